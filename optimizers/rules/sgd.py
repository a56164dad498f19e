"""Plain SGD: param <- param - lr * (grad + weight_decay * param)."""

from __future__ import annotations

from torch import Tensor

from optisweep.optimizers.rules.base import UpdateRule, Variant, with_weight_decay


class SGDRule(UpdateRule):
    """torch.optim.SGD with momentum=0."""

    torch_has_step = False

    def coefficients(
        self,
        hyperparameters: dict[str, Tensor],
        lr: Tensor,
        step: Tensor,
        scalars: dict[str, Tensor],
    ) -> dict[str, Tensor]:
        """Negative learning rate and weight decay."""
        return {"neg_lr": -lr, "weight_decay": hyperparameters["weight_decay"]}

    def apply(
        self,
        variant: Variant,
        param: Tensor,
        grad: Tensor,
        state: dict[str, Tensor],
        coef: dict[str, Tensor],
    ) -> None:
        """One SGD step."""
        (has_weight_decay,) = variant
        if has_weight_decay:
            grad = with_weight_decay(param, grad, coef["weight_decay"])
        param.addcmul_(grad, coef["neg_lr"])
