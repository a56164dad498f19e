"""Adamax: Adam with an exponentially weighted infinity norm in place of the second moment."""

from __future__ import annotations

import torch
from torch import Tensor

from optisweep.optimizers.rules.base import UpdateRule, Variant


class AdamaxRule(UpdateRule):
    """u <- max(b2 * u, |g| + eps); param -= lr / bc1 * m / u."""

    def state_slots(self, flags: Variant) -> tuple[str, ...]:
        """First moment and infinity norm."""
        return ("exp_avg", "exp_inf")

    def step_coefficients(
        self,
        hyperparameters: dict[str, Tensor],
        lr: Tensor,
        step: Tensor,
        scalars: dict[str, Tensor],
    ) -> dict[str, Tensor]:
        """Bias-corrected step size."""
        beta1 = hyperparameters["beta1"]
        return {
            "one_minus_beta1": 1 - beta1,
            "beta2": hyperparameters["beta2"],
            "eps": hyperparameters["eps"],
            "neg_clr": -lr / (1 - beta1**step),
        }

    def update(
        self,
        flags: Variant,
        param: Tensor,
        grad: Tensor,
        state: dict[str, Tensor],
        coef: dict[str, Tensor],
    ) -> None:
        """One Adamax step."""
        exp_avg = state["exp_avg"].lerp_(grad, coef["one_minus_beta1"])
        exp_inf = state["exp_inf"]
        torch.maximum(exp_inf.mul_(coef["beta2"]), grad.abs().add_(coef["eps"]), out=exp_inf)
        param.addcmul_(exp_avg / exp_inf, coef["neg_clr"])
