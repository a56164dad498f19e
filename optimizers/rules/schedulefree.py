"""Schedule-free AdamW and SGD (Defazio et al., 2024; reference: the schedulefree package):
no lr schedule, an average instead. Training steps y, an interpolation between the
average x (what evaluation and checkpoints see) and the base sequence z:

    y <- lerp(y, z, c);  y += lr (beta (1 - c) - 1) g';  z -= lr g'

with g' the (AdamW: normalised) gradient plus weight decay at y, and c_t = w_t / sum w the
weight of step t (w_t = t^r lr_max^weight_lr_power). ``eval`` moves the parameters to
x = lerp(y, z, 1 - 1/beta), ``train`` back to y = lerp(x, z, 1 - beta)."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from optisweep.optimizers.rules.base import UpdateRule, Variant


class ScheduleFreeRule(UpdateRule):
    """Schedule-free AdamW (``adaptive``) or SGD, per member; ``beta`` is betas[0] or
    momentum."""

    torch_has_step = False
    scalars = ("lr_max", "weight_sum")
    scalar_initials: ClassVar[dict[str, float]] = {"lr_max": -1.0, "weight_sum": 0.0}
    group_scalars = True
    averaged = True

    def __init__(self, *, adaptive: bool) -> None:
        self.adaptive = adaptive
        self.beta = "beta1" if adaptive else "momentum"

    def state_slots(self, flags: Variant) -> tuple[str, ...]:
        """The base sequence z (and AdamW's second moment)."""
        return ("z", "exp_avg_sq") if self.adaptive else ("z",)

    def init_slot(self, name: str, like: Tensor, hyperparameters: dict[str, Tensor]) -> Tensor:
        """z starts at the parameters; the second moment at zero."""
        if name == "z":
            return like.detach().clone(memory_format=torch.preserve_format)
        return super().init_slot(name, like, hyperparameters)

    def coefficients(
        self,
        hyperparameters: dict[str, Tensor],
        lr: Tensor,
        step: Tensor,
        scalars: dict[str, Tensor],
    ) -> dict[str, Tensor]:
        """This step's warmed-up lr, the average's weight c, and the y and z coefficients
        (weight decay is the rule's own: at y, after AdamW's normalisation)."""
        warmup = hyperparameters["warmup_steps"]
        scheduled = lr * torch.where(step <= warmup, step / warmup.clamp(min=1), 1.0)
        lr_max = scalars["lr_max"]
        torch.maximum(lr_max, scheduled, out=lr_max)
        weight = step ** hyperparameters["r"] * lr_max ** hyperparameters["weight_lr_power"]
        weight_sum = scalars["weight_sum"].add_(weight)
        ckp1 = torch.where(weight_sum > 0, weight / weight_sum, 0.0)
        beta = hyperparameters[self.beta]
        coef = {
            "ckp1": ckp1,
            "y_coef": scheduled * (beta * (1 - ckp1) - 1),
            "neg_lr": -scheduled,
            "weight_decay": hyperparameters["weight_decay"],
        }
        if self.adaptive:
            beta2 = hyperparameters["beta2"]
            coef |= {
                "beta2": beta2,
                "one_minus_beta2": 1 - beta2,
                "bias_correction2": 1 - beta2**step,
                "eps": hyperparameters["eps"],
            }
        return coef

    def apply(
        self,
        variant: Variant,
        param: Tensor,
        grad: Tensor,
        state: dict[str, Tensor],
        coef: dict[str, Tensor],
    ) -> None:
        """One step of y and z (the caller's grad is not modified)."""
        z = state["z"]
        if self.adaptive:
            second = state["exp_avg_sq"].mul_(coef["beta2"])
            second.addcmul_(grad * coef["one_minus_beta2"], grad)
            grad = grad / (second / coef["bias_correction2"]).sqrt_().add_(coef["eps"])
        if variant[0]:
            grad = grad.addcmul(param, coef["weight_decay"])
        param.lerp_(z, coef["ckp1"])
        param.addcmul_(grad, coef["y_coef"])
        z.addcmul_(grad, coef["neg_lr"])

    def swap_weight(self, hyperparameters: dict[str, Tensor], *, to_eval: bool) -> Tensor:
        """The lerp weight towards z that moves y to x (``to_eval``) or x back to y."""
        beta = hyperparameters[self.beta]
        return 1 - 1 / beta if to_eval else 1 - beta
