"""Prodigy (Mishchenko and Defazio, 2024; reference: the prodigyopt package): Adam whose step
size d is estimated while it trains, so its lr stays at 1. Per member, over all its parameters
(the estimate is one number per member, reduced over every parameter it steps):

    dlr = d lr (bias correction if on)
    m <- beta1 m + d (1 - beta1) g;   v <- beta2 v + d^2 (1 - beta2) g^2
    s <- beta3 s + (d / d0) dlr g;    N <- beta3 N + (d / d0) dlr <g, p0 - p>
    d_hat = d_coef N / |s|_1;  d_max <- max(d_max, d_hat);  d <- min(d_max, growth_rate d)
    (on the first estimate, while d is still d0: d <- max(d, d_hat) first)
    p <- p - wd dlr p - dlr m / (sqrt(v) + d eps)

with p0 the parameters at the first step. A member whose gradients are all zero moves
nothing, as the reference returns early (its step count still advances here)."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from optisweep.optimizers.rules.base import UpdateRule, Variant
from optisweep.optimizers.schemas import HParams, ProdigyParams

ESTIMATE = ("d", "d_max", "d_numerator", "d_denom", "d_hat")
"""The estimate's per-member scalars, named as the reference's param groups name them."""


def _per_member(value: Tensor) -> Tensor:
    """A coefficient broadcast against a parameter ([k, 1, ...]) as one float64 per member."""
    return value.reshape(-1).double()


def _rows(tensor: Tensor) -> Tensor:
    """Each member's parameter as one row ([k, ...] -> [k, n])."""
    return tensor.reshape(tensor.shape[0], -1)


class ProdigyRule(UpdateRule):
    """Prodigy per member: Adam's moments scaled by d, and d from every parameter's distance
    from where it started."""

    scalars = ESTIMATE
    scalar_initials: ClassVar[dict[str, float]] = {"d_numerator": 0.0, "d_denom": 0.0, "d_hat": 0.0}
    group_scalars = True
    reduces = True
    flat_slots = ("s", "p0")

    def flags(self, hyperparameters: HParams) -> Variant:
        """Decoupled decay, bias correction, the safeguarded warm-up, and a first moment."""
        assert isinstance(hyperparameters, ProdigyParams)
        return (
            hyperparameters.decouple,
            hyperparameters.use_bias_correction,
            hyperparameters.safeguard_warmup,
            hyperparameters.betas[0] > 0,
        )

    def state_slots(self, flags: Variant) -> tuple[str, ...]:
        """The moments (the first only with beta1 > 0), the running gradient sum s, and p0."""
        moments = ("exp_avg", "exp_avg_sq") if flags[3] else ("exp_avg_sq",)
        return (*moments, "s", "p0")

    def init_slot(self, name: str, like: Tensor, hyperparameters: dict[str, Tensor]) -> Tensor:
        """p0 is the parameters as they are; the rest start at zero."""
        if name == "p0":
            return like.detach().clone(memory_format=torch.preserve_format)
        return super().init_slot(name, like, hyperparameters)

    def initial_scalars(self, hyperparameters: dict[str, Tensor]) -> dict[str, Tensor]:
        """d and d_max start at d0; the sums at zero."""
        initial = super().initial_scalars(hyperparameters)
        return {
            **initial,
            "d": hyperparameters["d0"].clone(),
            "d_max": hyperparameters["d0"].clone(),
        }

    def coefficients(
        self,
        hyperparameters: dict[str, Tensor],
        lr: Tensor,
        step: Tensor,
        scalars: dict[str, Tensor],
    ) -> dict[str, Tensor]:
        """This step's moments' and estimate's coefficients from d as the step starts (weight
        decay is the rule's own: by dlr)."""
        d, d0 = scalars["d"], hyperparameters["d0"]
        beta1, beta2 = hyperparameters["beta1"], hyperparameters["beta2"]
        correction = (1 - beta2**step).sqrt() / (1 - beta1**step)
        dlr = d * lr * torch.where(hyperparameters["use_bias_correction"] > 0, correction, 1.0)
        beta3 = hyperparameters["beta3"]
        ratio = d / d0
        return {
            "beta1": beta1,
            "first": d * (1 - beta1),
            "beta2": beta2,
            "second": d * d * (1 - beta2),
            "beta3": torch.where(beta3.isnan(), beta2.sqrt(), beta3),
            "numerator": ratio * dlr,
            "s_step": torch.where(hyperparameters["safeguard_warmup"] > 0, ratio * d, ratio * dlr),
            "dlr": dlr,
            "weight_decay": hyperparameters["weight_decay"],
            "eps": hyperparameters["eps"],
            "d0": d0,
            "d_coef": hyperparameters["d_coef"],
            "growth_rate": torch.nan_to_num(hyperparameters["growth_rate"], nan=torch.inf),
        }

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
        """The moments and the estimate's sums over every parameter, then d, then the step."""
        assert scalars is not None, "prodigy: its estimate needs the members' scalars"
        decays, decouple, _, _, first_moment = variant
        first = coefs[0]
        numerator = torch.zeros_like(scalars["d"])
        denominator = torch.zeros_like(scalars["d"])
        used = []
        for param, grad, state, coef in zip(params, grads, states, coefs, strict=True):
            if decays and not decouple:  # L2: into the gradient both passes use
                grad = grad.addcmul(param, coef["weight_decay"])
            distance = torch.linalg.vecdot(_rows(grad), _rows(state["p0"] - param))
            numerator += _per_member(coef["numerator"]) * distance.double()
            if first_moment:
                state["exp_avg"].mul_(coef["beta1"]).addcmul_(grad, coef["first"])
            state["exp_avg_sq"].mul_(coef["beta2"]).addcmul_(grad * coef["second"], grad)
            s = state["s"].mul_(coef["beta3"]).addcmul_(grad, coef["s_step"])
            denominator += torch.linalg.vector_norm(_rows(s), ord=1, dim=1).double()
            used.append(grad)
        estimate = self._estimate(scalars, first, numerator, denominator)
        moves = denominator > 0
        for param, grad, state, coef in zip(params, used, states, coefs, strict=True):
            shape = (-1,) + (1,) * (param.dim() - 1)
            d = estimate.to(param.dtype).view(shape)
            step = torch.where(moves.view(shape), coef["dlr"], 0.0)
            if decays and decouple:
                param.add_(param * (-coef["weight_decay"] * step))
            denom = state["exp_avg_sq"].sqrt().add_(d * coef["eps"])
            if first_moment:
                param.addcmul_(state["exp_avg"] / denom, -step)
            else:
                param.addcmul_(grad / denom, -step * d)

    @staticmethod
    def _estimate(
        scalars: dict[str, Tensor], coef: dict[str, Tensor], delta: Tensor, denominator: Tensor
    ) -> Tensor:
        """The new d per member from this step's sums (written into ``scalars``; a member with
        no gradient keeps every scalar as it was)."""
        d, d_max = scalars["d"], scalars["d_max"]
        numerator = scalars["d_numerator"] * _per_member(coef["beta3"]) + delta
        d_hat = _per_member(coef["d_coef"]) * numerator / denominator
        first = d == _per_member(coef["d0"])
        grown = torch.where(first, torch.maximum(d, d_hat), d)
        new_max = torch.maximum(d_max, d_hat)
        new_d = torch.minimum(new_max, grown * _per_member(coef["growth_rate"]))
        moves = denominator > 0
        for name, value in (
            ("d_numerator", numerator),
            ("d_denom", denominator),
            ("d", new_d),
            ("d_max", new_max),
            ("d_hat", d_hat),
        ):
            scalars[name].copy_(torch.where(moves, value, scalars[name]))
        return scalars["d"]
