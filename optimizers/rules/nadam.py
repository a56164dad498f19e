"""NAdam: Adam with Nesterov momentum and Dozat's momentum-decay schedule."""

from __future__ import annotations

from torch import Tensor

from optisweep.optimizers.rules.base import UpdateRule, Variant, ema_


class NAdamRule(UpdateRule):
    """mu_t = b1 (1 - 0.5 * 0.96^(t * momentum_decay)); two addcdiv terms as torch.optim.NAdam."""

    scalars = ("mu_product",)

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
        """Momentum cache for this and the next step; advances mu_product in place."""
        beta1, beta2 = hyperparameters["beta1"], hyperparameters["beta2"]
        momentum_decay = hyperparameters["momentum_decay"]
        mu = beta1 * (1.0 - 0.5 * (0.96 ** (step * momentum_decay)))
        mu_next = beta1 * (1.0 - 0.5 * (0.96 ** ((step + 1) * momentum_decay)))
        mu_product = scalars["mu_product"].mul_(mu)
        return {
            "one_minus_beta1": 1 - beta1,
            "beta2": beta2,
            "one_minus_beta2": 1 - beta2,
            "bias_correction2": 1 - beta2**step,
            "eps": hyperparameters["eps"],
            "grad_coef": -lr * (1.0 - mu) / (1.0 - mu_product),
            "avg_coef": (-lr * mu_next) / (1.0 - mu_product * mu_next),
        }

    def update(
        self,
        flags: Variant,
        param: Tensor,
        grad: Tensor,
        state: dict[str, Tensor],
        coef: dict[str, Tensor],
    ) -> None:
        """One NAdam step."""
        exp_avg = state["exp_avg"].lerp_(grad, coef["one_minus_beta1"])
        second = ema_(state["exp_avg_sq"], grad, coef["beta2"], coef["one_minus_beta2"])
        denom = second.div(coef["bias_correction2"]).sqrt().add_(coef["eps"])
        param.addcmul_(grad / denom, coef["grad_coef"])
        param.addcmul_(exp_avg / denom, coef["avg_coef"])
