"""The shape every population update rule has, and the small helpers they share."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from optisweep.optimizers.schemas import HParams

Variant = tuple[bool, ...]
"""Flags that pick a rule's code path (amsgrad, nesterov, weight decay on, ...)."""


def flat_hyperparameters(hyperparameters: HParams) -> dict[str, float]:
    """Numeric hyperparameters as a flat dict; tuple fields become name1, name2 (betas: beta1)."""
    flat: dict[str, float] = {}
    for name, value in hyperparameters:
        if isinstance(value, bool):
            continue
        if isinstance(value, tuple):
            for i, item in enumerate(value):
                flat[f"{name.removesuffix('s')}{i + 1}"] = float(item)
        elif isinstance(value, int | float):
            flat[name] = float(value)
    return flat


def with_weight_decay(param: Tensor, grad: Tensor, weight_decay: Tensor) -> Tensor:
    """L2 weight decay folded into the gradient as torch.optim does: grad + weight_decay * param."""
    return grad.addcmul(param, weight_decay)


def ema_(average: Tensor, value: Tensor, decay: Tensor, one_minus_decay: Tensor) -> Tensor:
    """average <- decay * average + (1 - decay) * value**2, in place (second-moment update)."""
    return average.mul_(decay).addcmul_(value * one_minus_decay, value)


class UpdateRule:
    """One optimizer family's update, vectorised over the members of a population.

    Hyperparameters and per-step coefficients arrive as tensors of shape [K, 1, ...] that
    broadcast against the stacked parameters [K, ...]; ``apply`` updates parameters and state
    in place and keeps no hidden state of its own.
    """

    torch_has_step: ClassVar[bool] = True
    """Whether torch.optim keeps a ``step`` entry in this family's per-parameter state."""
    scalars: ClassVar[tuple[str, ...]] = ()
    """Per-member scalar state besides ``step`` (nadam's mu_product), with initial value 1."""

    def variant(self, hyperparameters: HParams) -> Variant:
        """Flags that choose the code path; members with equal flags update together."""
        return (hyperparameters.weight_decay != 0,)

    def slots(self, variant: Variant) -> tuple[str, ...]:
        """Names of the per-parameter state tensors, as torch.optim names them."""
        return ()

    def init_slot(self, name: str, like: Tensor, hyperparameters: dict[str, Tensor]) -> Tensor:
        """A fresh state tensor for ``name`` shaped like ``like`` ([K, ...])."""
        return torch.zeros_like(like, memory_format=torch.preserve_format)

    def coefficients(
        self,
        hyperparameters: dict[str, Tensor],
        lr: Tensor,
        step: Tensor,
        scalars: dict[str, Tensor],
    ) -> dict[str, Tensor]:
        """Per-member coefficients ([K] float64) for this step; ``step`` is already incremented."""
        raise NotImplementedError

    def apply(
        self,
        variant: Variant,
        param: Tensor,
        grad: Tensor,
        state: dict[str, Tensor],
        coef: dict[str, Tensor],
    ) -> None:
        """Update ``param`` and ``state`` in place from ``grad`` (never modified)."""
        raise NotImplementedError

    def apply_all(
        self,
        variant: Variant,
        params: list[Tensor],
        grads: list[Tensor],
        states: list[dict[str, Tensor]],
        coefs: list[dict[str, Tensor]],
    ) -> None:
        """``apply`` to every parameter of a group: the unit that torch.compile fuses."""
        for param, grad, state, coef in zip(params, grads, states, coefs, strict=True):
            self.apply(variant, param, grad, state, coef)
