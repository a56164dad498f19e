"""Adadelta: step sizes from decaying averages of squared gradients and squared updates."""

from __future__ import annotations

from torch import Tensor

from optisweep.optimizers.rules.base import UpdateRule, Variant, ema_


class AdadeltaRule(UpdateRule):
    """delta = sqrt(acc_delta + eps) / sqrt(square_avg + eps) * grad; param -= lr * delta."""

    def state_slots(self, flags: Variant) -> tuple[str, ...]:
        """Average squared gradient and average squared update."""
        return ("square_avg", "acc_delta")

    def step_coefficients(
        self,
        hyperparameters: dict[str, Tensor],
        lr: Tensor,
        step: Tensor,
        scalars: dict[str, Tensor],
    ) -> dict[str, Tensor]:
        """rho and its complement, eps."""
        rho = hyperparameters["rho"]
        return {
            "neg_lr": -lr,
            "rho": rho,
            "one_minus_rho": 1 - rho,
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
        """One Adadelta step."""
        rho, one_minus_rho, eps = coef["rho"], coef["one_minus_rho"], coef["eps"]
        square_avg = ema_(state["square_avg"], grad, rho, one_minus_rho)
        std = square_avg.add(eps).sqrt_()
        delta = state["acc_delta"].add(eps).sqrt_().div_(std).mul_(grad)
        ema_(state["acc_delta"], delta, rho, one_minus_rho)
        param.addcmul_(delta, coef["neg_lr"])
