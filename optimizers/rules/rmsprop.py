"""RMSprop, optionally centred and with momentum, as torch.optim.RMSprop."""

from __future__ import annotations

from torch import Tensor

from optisweep.optimizers.rules.base import UpdateRule, Variant, ema_
from optisweep.optimizers.schemas import HParams, RMSpropParams


class RMSpropRule(UpdateRule):
    """square_avg <- alpha * square_avg + (1 - alpha) * grad**2; param -= lr * grad / rms."""

    def flags(self, hyperparameters: HParams) -> Variant:
        """Centred, momentum on."""
        assert isinstance(hyperparameters, RMSpropParams)
        return (hyperparameters.centered, hyperparameters.momentum > 0)

    def state_slots(self, flags: Variant) -> tuple[str, ...]:
        """square_avg, plus momentum_buffer and grad_avg where the flags need them."""
        centered, has_momentum = flags
        names = ["square_avg"]
        if has_momentum:
            names.append("momentum_buffer")
        if centered:
            names.append("grad_avg")
        return tuple(names)

    def step_coefficients(
        self,
        hyperparameters: dict[str, Tensor],
        lr: Tensor,
        step: Tensor,
        scalars: dict[str, Tensor],
    ) -> dict[str, Tensor]:
        """alpha and its complement, eps, momentum."""
        alpha = hyperparameters["alpha"]
        return {
            "neg_lr": -lr,
            "alpha": alpha,
            "one_minus_alpha": 1 - alpha,
            "eps": hyperparameters["eps"],
            "momentum": hyperparameters["momentum"],
        }

    def update(
        self,
        flags: Variant,
        param: Tensor,
        grad: Tensor,
        state: dict[str, Tensor],
        coef: dict[str, Tensor],
    ) -> None:
        """One RMSprop step."""
        centered, has_momentum = flags
        square_avg = ema_(state["square_avg"], grad, coef["alpha"], coef["one_minus_alpha"])
        if centered:
            grad_avg = state["grad_avg"].lerp_(grad, coef["one_minus_alpha"])
            avg = square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_()
        else:
            avg = square_avg.sqrt()
        avg = avg.add_(coef["eps"])
        if has_momentum:
            buf = state["momentum_buffer"].mul_(coef["momentum"]).addcdiv_(grad, avg)
            param.addcmul_(buf, coef["neg_lr"])
        else:
            param.addcmul_(grad / avg, coef["neg_lr"])
