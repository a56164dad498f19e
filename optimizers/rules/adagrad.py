"""Adagrad: per-coordinate step sizes from the running sum of squared gradients."""

from __future__ import annotations

import torch
from torch import Tensor

from optisweep.optimizers.rules.base import UpdateRule, Variant


class AdagradRule(UpdateRule):
    """sum <- sum + grad**2; param <- param - clr * grad / (sqrt(sum) + eps)."""

    def state_slots(self, flags: Variant) -> tuple[str, ...]:
        """The accumulated sum of squares."""
        return ("sum",)

    def init_slot(self, name: str, like: Tensor, hyperparameters: dict[str, Tensor]) -> Tensor:
        """The sum starts at initial_accumulator_value."""
        start = hyperparameters["initial_accumulator_value"].to(like.dtype)
        shape = (-1,) + (1,) * (like.dim() - 1)
        return torch.zeros_like(like).add_(start.view(shape))

    def step_coefficients(
        self,
        hyperparameters: dict[str, Tensor],
        lr: Tensor,
        step: Tensor,
        scalars: dict[str, Tensor],
    ) -> dict[str, Tensor]:
        """The decayed learning rate lr / (1 + (step - 1) * lr_decay)."""
        clr = lr / (1 + (step - 1) * hyperparameters["lr_decay"])
        return {
            "neg_clr": -clr,
            "eps": hyperparameters["eps"],
        }

    def update(
        self,
        flags: Variant,
        param: Tensor,
        grad: Tensor,
        state: dict[str, Tensor],
        coef: dict[str, Tensor],
    ) -> None:
        """One Adagrad step."""
        accumulated = state["sum"].addcmul_(grad, grad)
        std = accumulated.sqrt().add_(coef["eps"])
        param.addcmul_(grad / std, coef["neg_clr"])
