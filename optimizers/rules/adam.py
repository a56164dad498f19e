"""Adam and AdamW (the same rule, its weight decay decoupled), with bias correction and
optional AMSGrad."""

from __future__ import annotations

import torch
from torch import Tensor

from optisweep.optimizers.rules.base import UpdateRule, Variant, ema_
from optisweep.optimizers.schemas import AdamParams, HParams


class AdamRule(UpdateRule):
    """m <- lerp(m, g, 1-b1); v <- b2 v + (1-b2) g^2; p -= lr/bc1 * m / (sqrt(v/bc2) + eps)."""

    def __init__(self, *, decoupled_weight_decay: bool) -> None:
        self.weight_decay = "decoupled" if decoupled_weight_decay else "coupled"

    def flags(self, hyperparameters: HParams) -> Variant:
        """AMSGrad on."""
        assert isinstance(hyperparameters, AdamParams)
        return (hyperparameters.amsgrad,)

    def state_slots(self, flags: Variant) -> tuple[str, ...]:
        """First and second moments, plus their running maximum with AMSGrad."""
        (amsgrad,) = flags
        return ("exp_avg", "exp_avg_sq", "max_exp_avg_sq") if amsgrad else ("exp_avg", "exp_avg_sq")

    def step_coefficients(
        self,
        hyperparameters: dict[str, Tensor],
        lr: Tensor,
        step: Tensor,
        scalars: dict[str, Tensor],
    ) -> dict[str, Tensor]:
        """Bias corrections and the step size lr / bc1."""
        beta1, beta2 = hyperparameters["beta1"], hyperparameters["beta2"]
        bias_correction1 = 1 - beta1**step
        bias_correction2 = 1 - beta2**step
        coef = {
            "one_minus_beta1": 1 - beta1,
            "beta2": beta2,
            "one_minus_beta2": 1 - beta2,
            "neg_step_size": -lr / bias_correction1,
            "bias_correction2_sqrt": bias_correction2.sqrt(),
            "eps": hyperparameters["eps"],
        }
        return coef

    def update(
        self,
        flags: Variant,
        param: Tensor,
        grad: Tensor,
        state: dict[str, Tensor],
        coef: dict[str, Tensor],
    ) -> None:
        """One Adam (or AdamW) step."""
        (amsgrad,) = flags
        exp_avg = state["exp_avg"].lerp_(grad, coef["one_minus_beta1"])
        second = ema_(state["exp_avg_sq"], grad, coef["beta2"], coef["one_minus_beta2"])
        if amsgrad:
            second = torch.maximum(state["max_exp_avg_sq"], second, out=state["max_exp_avg_sq"])
        denom = (second.sqrt() / coef["bias_correction2_sqrt"]).add_(coef["eps"])
        param.addcmul_(exp_avg / denom, coef["neg_step_size"])
