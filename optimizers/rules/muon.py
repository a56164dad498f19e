"""Muon (Jordan et al., 2024; torch.optim.Muon): momentum orthogonalised by a Newton-Schulz
iteration for the model's hidden matrices, and AdamW beside it for every other parameter (the
convention of Muon's reference code: embeddings, the output layer, biases and gains on AdamW).

The iteration runs for all of a group's members at once: each member's matrix is one entry of
a batched product (``baddbmm``), in bfloat16 as torch.optim.Muon computes it."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import torch
from torch import Tensor

from optisweep.optimizers.param_groups import ParamInfo
from optisweep.optimizers.rules.adam import AdamRule
from optisweep.optimizers.rules.base import UpdateRule, Variant
from optisweep.optimizers.schemas import HParams, MuonParams

MUON, ADAMW = "muon", "adamw"
_ADAMW = AdamRule(decoupled_weight_decay=True)
"""The rule the parameters beside the hidden matrices step by (its coefficients are Muon's)."""


_EMBEDDING_LIKE = re.compile(r"embed|position", re.IGNORECASE)
"""Names (of the parameter or its module's class) of embeddings that are not nn.Embedding: a
learned position table (``Positions``), a ``wpe``-style ``pos_embed`` parameter."""


def _embedding(info: ParamInfo) -> bool:
    return "embedding" in info.kinds or bool(_EMBEDDING_LIKE.search(f"{info.name} {info.module}"))


def muon_roles(
    params: Sequence[ParamInfo] | None, shapes: Sequence[tuple[int, ...]]
) -> tuple[str, ...]:
    """Which parameters Muon steps: the 2-D ones that are neither an embedding (an Embedding's
    table, or a parameter or module named like one: ``embed``, ``position``) nor the output
    layer (the model's last matrix); without a description of the model, every 2-D one."""
    if params is None:
        return tuple(MUON if len(shape) == 2 else ADAMW for shape in shapes)
    matrices = [i for i, p in enumerate(params) if p.ndim == 2 and not _embedding(p)]
    hidden = set(matrices[:-1])
    return tuple(MUON if i in hidden else ADAMW for i in range(len(params)))


def _adjust_ratio(kind: str, rows: int, cols: int) -> float:
    """torch.optim.Muon's lr adjustment for a rows x cols matrix."""
    if kind == "match_rms_adamw":
        return 0.2 * math.sqrt(max(rows, cols))
    return math.sqrt(max(1, rows / cols))


class MuonRule(UpdateRule):
    """Hidden matrices: b <- lerp(b, g, 1-mu); u = NS(lerp(g, b, mu) or b); p *= 1 - lr wd;
    p -= lr * ratio(shape) * u. The rest: AdamW with ``adamw_*`` hyperparameters, its lr
    following the member's schedule and group multipliers as Muon's lr does."""

    weight_decay = "decoupled"
    elementwise = False

    def flags(self, hyperparameters: HParams) -> Variant:
        """Nesterov, the lr adjustment, and the Newton-Schulz steps, coefficients and eps
        (the bfloat16 kernels take them as numbers)."""
        assert isinstance(hyperparameters, MuonParams)
        return (
            hyperparameters.nesterov,
            hyperparameters.adjust_lr_fn or "original",
            hyperparameters.ns_steps,
            *hyperparameters.ns_coefficients,
            hyperparameters.eps,
        )

    def variant(self, hyperparameters: HParams) -> Variant:
        """Both sides always apply their decay (a factor of exactly 1 at 0), as torch does."""
        return (True, *self.flags(hyperparameters))

    def roles(
        self, params: Sequence[ParamInfo] | None, shapes: Sequence[tuple[int, ...]]
    ) -> tuple[str, ...]:
        """Muon for the hidden matrices, AdamW for the rest."""
        return muon_roles(params, shapes)

    def role_has_step(self, role: str) -> bool:
        """torch.optim.Muon keeps no step; AdamW does."""
        return role != MUON

    def param_slots(self, variant: Variant, like: Tensor, role: str = "") -> tuple[str, ...]:
        """Muon's momentum buffer, or AdamW's two moments."""
        return ("momentum_buffer",) if role == MUON else ("exp_avg", "exp_avg_sq")

    def override_hyperparameters(
        self, hyperparameters: dict[str, Tensor], weight_decay: Tensor
    ) -> dict[str, Tensor]:
        """A parameter group's weight decay replaces both sides' own."""
        keep = weight_decay.isnan()
        return {
            **hyperparameters,
            "weight_decay": torch.where(keep, hyperparameters["weight_decay"], weight_decay),
            "adamw_weight_decay": torch.where(
                keep, hyperparameters["adamw_weight_decay"], weight_decay
            ),
        }

    def coefficients(
        self,
        hyperparameters: dict[str, Tensor],
        lr: Tensor,
        step: Tensor,
        scalars: dict[str, Tensor],
    ) -> dict[str, Tensor]:
        """Both sides' coefficients; AdamW's lr is scaled as Muon's is (schedule, group)."""
        return self.step_coefficients(hyperparameters, lr, step, scalars)

    def step_coefficients(
        self,
        hyperparameters: dict[str, Tensor],
        lr: Tensor,
        step: Tensor,
        scalars: dict[str, Tensor],
    ) -> dict[str, Tensor]:
        """Muon's momentum, lr and decay; AdamW's bias corrections, step size and decay."""
        momentum = hyperparameters["momentum"]
        adamw_lr = hyperparameters["adamw_lr"] * (lr / hyperparameters["lr"])
        beta1, beta2 = hyperparameters["adamw_beta1"], hyperparameters["adamw_beta2"]
        return {
            "momentum": momentum,
            "one_minus_momentum": 1 - momentum,
            "lr": lr,
            "muon_decay": 1 - lr * hyperparameters["weight_decay"],
            "one_minus_beta1": 1 - beta1,
            "beta2": beta2,
            "one_minus_beta2": 1 - beta2,
            "neg_step_size": -adamw_lr / (1 - beta1**step),
            "bias_correction2_sqrt": (1 - beta2**step).sqrt(),
            "eps": hyperparameters["adamw_eps"],
            "adamw_decay": 1 - adamw_lr * hyperparameters["adamw_weight_decay"],
        }

    def apply_all(
        self,
        variant: Variant,
        params: list[Tensor],
        grads: list[Tensor],
        states: list[dict[str, Tensor]],
        coefs: list[dict[str, Tensor]],
        roles: tuple[str, ...] = (),
        scalars: dict[str, Tensor] | None = None,
    ) -> None:
        """Each parameter by its role."""
        roles = roles or self.roles(None, [tuple(p.shape[1:]) for p in params])
        for param, grad, state, coef, role in zip(params, grads, states, coefs, roles, strict=True):
            if role == MUON:
                self._muon(variant, param, grad, state, coef)
            else:
                self._adamw(param, grad, state, coef)

    def _muon(
        self,
        variant: Variant,
        param: Tensor,
        grad: Tensor,
        state: dict[str, Tensor],
        coef: dict[str, Tensor],
    ) -> None:
        _, nesterov, adjust, steps, a, b, c, eps = variant
        buffer = state["momentum_buffer"].lerp_(grad, coef["one_minus_momentum"])
        update = grad.lerp(buffer, coef["momentum"]) if nesterov else buffer
        orthogonal = newton_schulz(update, (float(a), float(b), float(c)), int(steps), float(eps))
        rows, cols = param.shape[-2:]
        ratio = _adjust_ratio(str(adjust), rows, cols)
        param.mul_(coef["muon_decay"])
        # one multiply-add, as torch's add_(update, alpha=-lr * ratio) rounds it
        param.addcmul_(orthogonal.to(param.dtype), coef["lr"] * -ratio)

    def _adamw(
        self, param: Tensor, grad: Tensor, state: dict[str, Tensor], coef: dict[str, Tensor]
    ) -> None:
        param.mul_(coef["adamw_decay"])
        _ADAMW.update((False,), param, grad, state, coef)  # AdamW's own step (no AMSGrad)


def newton_schulz(
    update: Tensor, coefficients: tuple[float, float, float], steps: int, eps: float
) -> Tensor:
    """Each member's matrix ([K, rows, cols]) orthogonalised as torch.optim.Muon does one:
    normalised, then ``steps`` quintic iterations, in bfloat16, the wide way round."""
    a, b, c = coefficients
    x = update.bfloat16()
    tall = update.size(-2) > update.size(-1)
    if tall:
        x = x.mT
    x = x / x.norm(dim=(-2, -1), keepdim=True).clamp(min=eps)
    for _ in range(steps):
        gram = x @ x.mT
        x = torch.baddbmm(x, torch.baddbmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return x.mT if tall else x
