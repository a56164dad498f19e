"""The shape every population update rule has, and the pieces they share.

A rule is composed as optax composes ``adamw``: weight decay is one shared piece applied before
the rule's own update (``apply``), coupled (L2, folded into the gradient: torch.optim's
``weight_decay`` everywhere but AdamW) or decoupled (the parameter shrunk by lr * wd first:
AdamW); a rule supplies only its own coefficients, state and update.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar, Literal

import torch
from torch import Tensor

from optisweep.optimizers.param_groups import ParamInfo
from optisweep.optimizers.schemas import HParams

Variant = tuple[bool | int | float | str, ...]
"""Flags that pick a rule's code path: weight decay on, then the rule's own (amsgrad, ...;
Muon's Newton-Schulz steps and coefficients, which its kernels take as Python numbers)."""
WeightDecay = Literal["coupled", "decoupled"]


def flat_hyperparameters(hyperparameters: HParams) -> dict[str, float]:
    """Numeric hyperparameters as a flat dict; tuple fields become name1, name2 (betas: beta1,
    beta2; eps: eps1, eps2), None (a default the rule decides) becomes NaN, and a flag 1 or 0
    (members that step together share their flags, so a coefficient may read one)."""
    flat: dict[str, float] = {}
    for name, value in hyperparameters:
        if value is None:
            flat[name] = math.nan
        elif isinstance(value, tuple):
            stem = name[:-1] if name.endswith("betas") else name
            for i, item in enumerate(value):
                flat[f"{stem}{i + 1}"] = math.nan if item is None else float(item)
        elif isinstance(value, int | float):
            flat[name] = float(value)
    return flat


def shaped_like(value: Tensor, param: Tensor) -> Tensor:
    """A state tensor shaped like its parameter: one the reference keeps flattened (Prodigy's s
    and p0) viewed back, and its p0 of an all-zero parameter (a 0-d zero) broadcast."""
    if value.shape == param.shape:
        return value
    return value.view(param.shape) if value.numel() == param.numel() else value.expand(param.shape)


def decay_coefficients(weight_decay: Tensor, lr: Tensor) -> dict[str, Tensor]:
    """Weight decay's per-member coefficients: wd itself (coupled) and 1 - lr * wd
    (decoupled); the rule's kind picks one."""
    return {"weight_decay": weight_decay, "decay_factor": 1 - lr * weight_decay}


def decay_(kind: WeightDecay, param: Tensor, grad: Tensor, coef: dict[str, Tensor]) -> Tensor:
    """Apply weight decay before a rule's update; the gradient the rule then uses. Coupled:
    grad + weight_decay * param (a new tensor: the caller's grad is never modified);
    decoupled: param shrunk in place by its decay factor, grad unchanged."""
    if kind == "decoupled":
        param.mul_(coef["decay_factor"])
        return grad
    return grad.addcmul(param, coef["weight_decay"])


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
    """Per-member scalar state besides ``step`` (nadam's mu_product)."""
    scalar_initials: ClassVar[dict[str, float]] = {}
    """Each scalar's value before the first step (1 where not given)."""
    group_scalars: ClassVar[bool] = False
    reduces: ClassVar[bool] = False
    """Whether a member's update reduces over all of its parameters (Prodigy's d, one estimate
    from every parameter), so they step in one call and share one set of scalars (the reference
    reads them from its first param group and writes them to every one)."""
    flat_slots: ClassVar[tuple[str, ...]] = ()
    """State tensors the reference keeps flattened to 1-D (Prodigy's s and p0); a population
    keeps them shaped like the parameter, and an export flattens them."""
    """Whether the reference keeps the step count (``k``) and the scalars in its param groups
    (schedule-free) rather than in each parameter's state (torch.optim)."""
    averaged: ClassVar[bool] = False
    """Whether evaluation sees other parameters than training does (schedule-free's x): the
    rule then has ``swap_weight`` and the optimizers ``train()`` and ``eval()``."""

    weight_decay: WeightDecay = "coupled"
    """How this family's ``weight_decay`` applies (AdamW: decoupled)."""
    elementwise: ClassVar[bool] = True
    """Whether every state tensor is shaped like its parameter and the update is elementwise,
    so a population may step all parameters as one flat buffer (Adafactor's factored moments
    and per-tensor RMS are not)."""

    def initial_scalars(self, hyperparameters: dict[str, Tensor]) -> dict[str, Tensor]:
        """Each scalar's per-member value ([k] float64) before the first step: its
        ``scalar_initials`` entry (1 where not given)."""
        like = hyperparameters["lr"]
        return {
            name: torch.full_like(like, self.scalar_initials.get(name, 1.0))
            for name in self.scalars
        }

    def swap_weight(self, hyperparameters: dict[str, Tensor], *, to_eval: bool) -> Tensor:
        """An averaged rule's per-member lerp weight towards its ``z`` state that moves the
        parameters to what evaluation sees (``to_eval``) or back to what training steps."""
        raise NotImplementedError

    def variant(self, hyperparameters: HParams) -> Variant:
        """Flags that choose the code path; members with equal flags update together: weight
        decay on, then the rule's own ``flags``."""
        return (hyperparameters.weight_decay != 0, *self.flags(hyperparameters))

    def flags(self, hyperparameters: HParams) -> Variant:
        """The rule's own code-path flags (amsgrad, nesterov, ...); none by default."""
        return ()

    def slots(self, variant: Variant) -> tuple[str, ...]:
        """Names of the per-parameter state tensors, as torch.optim names them."""
        return self.state_slots(variant[1:])

    def param_slots(self, variant: Variant, like: Tensor, role: str = "") -> tuple[str, ...]:
        """The state tensors of the parameter ``like`` ([K, ...]) in ``role``; the variant's
        ``slots`` unless the rule's state depends on the parameter's shape or role."""
        return self.slots(variant)

    def roles(
        self, params: Sequence[ParamInfo] | None, shapes: Sequence[tuple[int, ...]]
    ) -> tuple[str, ...]:
        """Each parameter's role in a rule that treats parameters differently (Muon: its
        hidden matrices, and the rest on AdamW), from the model's description where there is
        one, else from one member's parameter ``shapes``; "" for every parameter by default."""
        return ("",) * len(shapes)

    def role_has_step(self, role: str) -> bool:
        """Whether torch's optimizer for parameters in ``role`` keeps a ``step`` entry."""
        return self.torch_has_step

    def override_hyperparameters(
        self, hyperparameters: dict[str, Tensor], weight_decay: Tensor
    ) -> dict[str, Tensor]:
        """Hyperparameters with a parameter group's weight decay ([k]; NaN where a member's
        rules leave the parameter its own) in place of the members' own."""
        own = hyperparameters["weight_decay"]
        return {
            **hyperparameters,
            "weight_decay": torch.where(weight_decay.isnan(), own, weight_decay),
        }

    def state_slots(self, flags: Variant) -> tuple[str, ...]:
        """The rule's state tensors for these flags; none by default."""
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
        """Per-member coefficients ([K] float64) for this step (``step`` already incremented):
        the rule's own and weight decay's."""
        own = self.step_coefficients(hyperparameters, lr, step, scalars)
        weight_decay = hyperparameters["weight_decay"]
        return {**own, **decay_coefficients(weight_decay, lr)}

    def step_coefficients(
        self,
        hyperparameters: dict[str, Tensor],
        lr: Tensor,
        step: Tensor,
        scalars: dict[str, Tensor],
    ) -> dict[str, Tensor]:
        """The rule's own per-member coefficients for this step."""
        raise NotImplementedError

    def decay_kind(self, flags: Variant) -> WeightDecay:
        """How weight decay applies for these flags (a family whose hyperparameters choose it,
        RAdam's ``decoupled_weight_decay``, says so in a flag)."""
        return self.weight_decay

    def apply(
        self,
        variant: Variant,
        param: Tensor,
        grad: Tensor,
        state: dict[str, Tensor],
        coef: dict[str, Tensor],
    ) -> None:
        """Update ``param`` and ``state`` in place from ``grad`` (never modified): weight decay
        where the variant has it, then the rule's update."""
        if variant[0]:
            grad = decay_(self.decay_kind(variant[1:]), param, grad, coef)
        self.update(variant[1:], param, grad, state, coef)

    def update(
        self,
        flags: Variant,
        param: Tensor,
        grad: Tensor,
        state: dict[str, Tensor],
        coef: dict[str, Tensor],
    ) -> None:
        """The rule's own step, in place, from a gradient weight decay has been applied to."""
        raise NotImplementedError

    def apply_all(
        self,
        variant: Variant,
        params: list[Tensor],
        grads: list[Tensor],
        states: list[dict[str, Tensor]],
        coefs: list[dict[str, Tensor]],
        roles: tuple[str, ...] = (),
        scalars: dict[str, Tensor] | None = None,
    ) -> None:
        """``apply`` to every parameter of a group (``roles``: each one's, where the rule
        has them; ``scalars``: the members' [k] float64 scalars, which a rule that ``reduces``
        updates in place): the unit that torch.compile fuses."""
        for param, grad, state, coef in zip(params, grads, states, coefs, strict=True):
            self.apply(variant, param, grad, state, coef)
