"""Adafactor (Shazeer and Stern, 2018) as torch.optim.Adafactor implements it: a second moment
factored into row and column averages for every parameter of two or more dimensions (a full
one for vectors), a relative step size min(lr, 1/sqrt(t)) scaled by the parameter's RMS, and
the update's RMS clipped to d."""

from __future__ import annotations

import torch
from torch import Tensor

from optisweep.optimizers.rules.base import UpdateRule, Variant, decay_


def _member_rms(tensor: Tensor) -> Tensor:
    """Each member's root mean square ([K, ...] -> [K, 1, ...], broadcasting against it)."""
    if tensor.dim() == 1:  # one number per member
        return tensor.abs()
    return tensor.square().mean(dim=tuple(range(1, tensor.dim())), keepdim=True).sqrt()


class AdafactorRule(UpdateRule):
    """R, C <- lerp to the row and column means of g^2 (V <- lerp to g^2 for vectors);
    U = g / sqrt(R C / mean(R)); p -= max(eps2, RMS(p)) min(lr, 1/sqrt(t)) U / max(1, RMS(U)/d)."""

    weight_decay = "decoupled"
    elementwise = False

    def param_slots(self, variant: Variant, like: Tensor, role: str = "") -> tuple[str, ...]:
        """Row and column factors for a matrix (or more dimensions), a variance for a vector."""
        return ("row_var", "col_var") if like.dim() > 2 else ("variance",)

    def init_slot(self, name: str, like: Tensor, hyperparameters: dict[str, Tensor]) -> Tensor:
        """Zeros, the factors reduced over the last (rows) or second-last (columns) dimension."""
        shape = list(like.shape)
        if name == "row_var":
            shape[-1] = 1
        elif name == "col_var":
            shape[-2] = 1
        return like.new_zeros(shape)

    def step_coefficients(
        self,
        hyperparameters: dict[str, Tensor],
        lr: Tensor,
        step: Tensor,
        scalars: dict[str, Tensor],
    ) -> dict[str, Tensor]:
        """This step's 1 - beta2 (t^decay), relative step size, epsilons and clipping d."""
        return {
            "one_minus_beta2": step ** hyperparameters["beta2_decay"],
            "rho": torch.minimum(lr, step.rsqrt()),
            "eps1": hyperparameters["eps1"],
            "eps2": hyperparameters["eps2"],
            "d": hyperparameters["d"],
        }

    def apply(
        self,
        variant: Variant,
        param: Tensor,
        grad: Tensor,
        state: dict[str, Tensor],
        coef: dict[str, Tensor],
    ) -> None:
        """The step size from the parameter's RMS before weight decay, then decay, then the
        factored update."""
        alpha = torch.maximum(coef["eps2"], _member_rms(param)) * coef["rho"]
        if variant[0]:
            grad = decay_("decoupled", param, grad, coef)
        # torch.optim: eps1 None is the parameter dtype's machine epsilon (NaN here).
        eps1 = torch.nan_to_num(coef["eps1"], nan=torch.finfo(param.dtype).eps)
        if param.dim() > 2:
            row_var, col_var = state["row_var"], state["col_var"]
            row_var.lerp_(grad.square().mean(dim=-1, keepdim=True), coef["one_minus_beta2"])
            col_var.lerp_(grad.square().mean(dim=-2, keepdim=True), coef["one_minus_beta2"])
            estimate = row_var * col_var  # the outer product (torch.optim: row_var @ col_var)
            estimate.div_(torch.maximum(row_var.mean(dim=-2, keepdim=True), eps1))
        else:
            variance = state["variance"]
            variance.lerp_(grad.square(), coef["one_minus_beta2"])
            estimate = variance  # read only: the maximum below is a new tensor
        update = torch.maximum(estimate, eps1 * eps1).rsqrt() * grad
        denom = torch.clamp(_member_rms(update) / coef["d"], min=1.0)
        param.sub_(update * (alpha / denom))
