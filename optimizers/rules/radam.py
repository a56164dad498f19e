"""RAdam: Adam whose adaptive step is rectified by the variance of its adaptive learning rate,
and replaced by a plain bias-corrected momentum step while that variance is intractable."""

from __future__ import annotations

import torch
from torch import Tensor

from optisweep.optimizers.rules.base import UpdateRule, Variant, WeightDecay, ema_
from optisweep.optimizers.schemas import HParams, RAdamParams

RECTIFY_FROM = 5.0
"""torch.optim.RAdam's threshold: the adaptive step is taken once rho_t exceeds it."""


class RAdamRule(UpdateRule):
    """m <- lerp(m, g, 1-b1); v <- b2 v + (1-b2) g^2; with rho_t > 5:
    p -= lr r_t / bc1 * m * sqrt(bc2) / (sqrt(v) + eps), else p -= lr / bc1 * m."""

    def flags(self, hyperparameters: HParams) -> Variant:
        """Decoupled weight decay."""
        assert isinstance(hyperparameters, RAdamParams)
        return (hyperparameters.decoupled_weight_decay,)

    def decay_kind(self, flags: Variant) -> WeightDecay:
        """Decoupled where the member asks for it, else L2."""
        return "decoupled" if flags[0] else "coupled"

    def state_slots(self, flags: Variant) -> tuple[str, ...]:
        """First and second moments."""
        return ("exp_avg", "exp_avg_sq")

    def step_coefficients(
        self,
        hyperparameters: dict[str, Tensor],
        lr: Tensor,
        step: Tensor,
        scalars: dict[str, Tensor],
    ) -> dict[str, Tensor]:
        """The rectification term and, per member, which of the two steps this one is."""
        beta1, beta2 = hyperparameters["beta1"], hyperparameters["beta2"]
        bias_correction1 = 1 - beta1**step
        bias_correction2 = 1 - beta2**step
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 * step * beta2**step / bias_correction2
        adaptive = rho_t > RECTIFY_FROM
        safe_rho = torch.where(adaptive, rho_t, torch.full_like(rho_t, 2 * RECTIFY_FROM))
        rect = (
            (safe_rho - 4) * (safe_rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * safe_rho)
        ).sqrt()
        ones = torch.ones_like(rect)
        return {
            "one_minus_beta1": 1 - beta1,
            "beta2": beta2,
            "one_minus_beta2": 1 - beta2,
            "eps": hyperparameters["eps"],
            "neg_step_size": -lr * torch.where(adaptive, rect, ones) / bias_correction1,
            "adaptive": adaptive.to(rect.dtype),
            "bias_correction2_sqrt": bias_correction2.sqrt(),
        }

    def update(
        self,
        flags: Variant,
        param: Tensor,
        grad: Tensor,
        state: dict[str, Tensor],
        coef: dict[str, Tensor],
    ) -> None:
        """One RAdam step; each member takes the adaptive or the momentum step its rho_t says."""
        exp_avg = state["exp_avg"].lerp_(grad, coef["one_minus_beta1"])
        second = ema_(state["exp_avg_sq"], grad, coef["beta2"], coef["one_minus_beta2"])
        adaptive = coef["adaptive"]
        # adaptive members divide by (sqrt(v) + eps) / sqrt(bc2), the others by 1
        denom = (second.sqrt().add_(coef["eps"]) / coef["bias_correction2_sqrt"] - 1) * adaptive + 1
        param.addcmul_(exp_avg / denom, coef["neg_step_size"])
