"""A torch.optim.Optimizer for one model from a population update rule: the single-model path
of the families torch.optim does not have (Lion), so a trial alone, a user's own loop, a
checkpoint and a pack member's export work for them as for torch's own families."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from optisweep.optimizers.rules.base import UpdateRule, Variant, flat_hyperparameters
from optisweep.optimizers.schemas import HParams


class RuleOptimizer(torch.optim.Optimizer):
    """One model's parameters stepped by a family's population rule as a population of one:
    its hyperparameters live in the param groups (so lr schedulers work), its state under
    torch.optim's slot names (so state dicts load into a pack and back)."""

    params_model: type[HParams]
    rule: UpdateRule

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        *,
        foreach: bool | None = None,
        fused: bool | None = None,
        **hyperparameters: Any,
    ) -> None:
        defaults = self.params_model.model_validate(hyperparameters).model_dump()
        # torch.optim's kernel choices, kept as torch keeps them: one rule serves both here.
        defaults.update(foreach=foreach, fused=fused)
        super().__init__(params, defaults)

    def _hyperparameters(self, group: dict[str, Any]) -> HParams:
        """A param group's hyperparameters, validated (a scheduler may have changed lr)."""
        return self.params_model.model_validate(
            {k: group[k] for k in self.params_model.model_fields}
        )

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """One step of every parameter with a gradient."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        rule = self.rule
        for group in self.param_groups:
            validated = self._hyperparameters(group)
            variant = rule.variant(validated)
            # As in a population: hyperparameters hold the member's own lr, the step's lr
            # (scheduled, times a parameter group's multiplier) comes apart.
            numeric = {**flat_hyperparameters(validated), "lr": float(self.defaults["lr"])}
            params = group["params"]
            roles = group.get("roles") or rule.roles(None, [tuple(p.shape) for p in params])
            for p, role in zip(params, roles, strict=True):
                if p.grad is not None:
                    self._step_one(p, p.grad, variant, numeric, float(group["lr"]), role)
        return loss

    def _step_one(
        self,
        p: Tensor,
        grad: Tensor,
        variant: Variant,
        numeric: dict[str, float],
        lr: float,
        role: str,
    ) -> None:
        """Step one parameter (in ``role``) as a member of a population of one ([1, ...]
        views)."""
        rule = self.rule
        hyperparameters = {
            name: torch.tensor([value], dtype=torch.float64, device=p.device)
            for name, value in numeric.items()
        }
        state = self.state[p]
        slots = rule.param_slots(variant, p.unsqueeze(0), role)
        if not state:
            for slot in slots:
                state[slot] = rule.init_slot(slot, p.unsqueeze(0), hyperparameters)[0]
        step = float(state["step"]) + 1 if "step" in state else 1.0
        if rule.role_has_step(role):
            state["step"] = torch.tensor(step, dtype=_scalar_dtype())
        scalars = {
            name: torch.tensor([float(state.get(name, 1.0))], dtype=torch.float64)
            for name in rule.scalars
        }
        coefficients = rule.coefficients(
            hyperparameters,
            torch.tensor([lr], dtype=torch.float64, device=p.device),
            torch.tensor([step], dtype=torch.float64, device=p.device),
            scalars,
        )
        for name, value in scalars.items():
            state[name] = torch.tensor(float(value[0]), dtype=_scalar_dtype())
        shape = (-1,) + (1,) * p.dim()
        cast = {k: v.to(p.device, p.dtype).view(shape) for k, v in coefficients.items()}
        views = {slot: state[slot].unsqueeze(0) for slot in slots}
        rule.apply_all(variant, [p.unsqueeze(0)], [grad.unsqueeze(0)], [views], [cast], (role,))


def _scalar_dtype() -> torch.dtype:
    # As torch.optim: scalar state in float64 only under a float64 default.
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def rule_optimizer(
    name: str, params_model: type[HParams], rule: UpdateRule
) -> type[torch.optim.Optimizer]:
    """A torch.optim.Optimizer class for family ``name``, stepping with ``rule``."""
    return type(
        f"{name.title().replace('_', '')}Optimizer",
        (RuleOptimizer,),
        {"params_model": params_model, "rule": rule, "__doc__": f"{name}, one model."},
    )
