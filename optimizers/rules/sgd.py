"""Plain SGD: param <- param - lr * grad (weight decay folded into grad by the base)."""

from __future__ import annotations

from torch import Tensor

from optisweep.optimizers.rules.base import UpdateRule, Variant


class SGDRule(UpdateRule):
    """torch.optim.SGD with momentum=0."""

    torch_has_step = False

    def step_coefficients(
        self,
        hyperparameters: dict[str, Tensor],
        lr: Tensor,
        step: Tensor,
        scalars: dict[str, Tensor],
    ) -> dict[str, Tensor]:
        """The negative learning rate."""
        return {"neg_lr": -lr}

    def update(
        self,
        flags: Variant,
        param: Tensor,
        grad: Tensor,
        state: dict[str, Tensor],
        coef: dict[str, Tensor],
    ) -> None:
        """One SGD step."""
        param.addcmul_(grad, coef["neg_lr"])
