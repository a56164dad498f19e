"""SGD with heavy-ball or Nesterov momentum, as torch.optim.SGD(momentum > 0)."""

from __future__ import annotations

import torch
from torch import Tensor

from optisweep.optimizers.rules.base import UpdateRule, Variant
from optisweep.optimizers.schemas import HParams, MomentumParams


class MomentumRule(UpdateRule):
    """buf <- momentum * buf + (1 - dampening) * grad; the first step sets buf <- grad."""

    torch_has_step = False

    def flags(self, hyperparameters: HParams) -> Variant:
        """Nesterov on."""
        assert isinstance(hyperparameters, MomentumParams)
        return (hyperparameters.nesterov,)

    def state_slots(self, flags: Variant) -> tuple[str, ...]:
        """One momentum buffer."""
        return ("momentum_buffer",)

    def step_coefficients(
        self,
        hyperparameters: dict[str, Tensor],
        lr: Tensor,
        step: Tensor,
        scalars: dict[str, Tensor],
    ) -> dict[str, Tensor]:
        """On a member's first step the buffer is the gradient itself (decay 0, scale 1)."""
        first = step == 1
        momentum = hyperparameters["momentum"]
        return {
            "neg_lr": -lr,
            "momentum": momentum,
            "buffer_decay": torch.where(first, torch.zeros_like(momentum), momentum),
            "grad_scale": torch.where(
                first, torch.ones_like(momentum), 1 - hyperparameters["dampening"]
            ),
        }

    def update(
        self,
        flags: Variant,
        param: Tensor,
        grad: Tensor,
        state: dict[str, Tensor],
        coef: dict[str, Tensor],
    ) -> None:
        """One momentum step."""
        (nesterov,) = flags
        buf = state["momentum_buffer"]
        buf.mul_(coef["buffer_decay"]).addcmul_(grad, coef["grad_scale"])
        direction = grad.addcmul(buf, coef["momentum"]) if nesterov else buf
        param.addcmul_(direction, coef["neg_lr"])
