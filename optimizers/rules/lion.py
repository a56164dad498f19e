"""Lion (Chen et al., 2023, "Symbolic Discovery of Optimization Algorithms"): the sign of an
interpolation of momentum and gradient, with decoupled weight decay; the reference is the
lion-pytorch package."""

from __future__ import annotations

from torch import Tensor

from optisweep.optimizers.rules.base import UpdateRule, Variant


class LionRule(UpdateRule):
    """c <- sign(b1 m + (1-b1) g); p -= lr c; m <- b2 m + (1-b2) g (decay first: p *= 1 - lr wd)."""

    torch_has_step = False
    weight_decay = "decoupled"

    def state_slots(self, flags: Variant) -> tuple[str, ...]:
        """The momentum (lion-pytorch calls it exp_avg)."""
        return ("exp_avg",)

    def step_coefficients(
        self,
        hyperparameters: dict[str, Tensor],
        lr: Tensor,
        step: Tensor,
        scalars: dict[str, Tensor],
    ) -> dict[str, Tensor]:
        """The betas' complements and the negative lr."""
        return {
            "one_minus_beta1": 1 - hyperparameters["beta1"],
            "one_minus_beta2": 1 - hyperparameters["beta2"],
            "neg_lr": -lr,
        }

    def update(
        self,
        flags: Variant,
        param: Tensor,
        grad: Tensor,
        state: dict[str, Tensor],
        coef: dict[str, Tensor],
    ) -> None:
        """One Lion step: two lerps (b m + (1-b) g, as the reference's mul and add up to
        rounding) and a sign."""
        exp_avg = state["exp_avg"]
        param.addcmul_(exp_avg.lerp(grad, coef["one_minus_beta1"]).sign_(), coef["neg_lr"])
        exp_avg.lerp_(grad, coef["one_minus_beta2"])
