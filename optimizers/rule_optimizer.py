"""A torch.optim.Optimizer for one model from a population update rule: the single-model path
of the families torch.optim does not have (Lion, Muon beside AdamW, schedule-free), so a trial
alone, a user's own loop, a checkpoint and a pack member's export work for them as for torch's
own families."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor

from optisweep.optimizers.rules.base import UpdateRule, flat_hyperparameters, shaped_like
from optisweep.optimizers.schemas import HParams


class RuleOptimizer(torch.optim.Optimizer):
    """One model's parameters stepped by a family's population rule as a population of one:
    its hyperparameters live in the param groups (so lr schedulers work), its state under
    the reference's names (so state dicts load into a pack and back): per parameter, and for
    a rule whose reference keeps them there (schedule-free) the step count ``k`` and scalars
    in the param group. An averaged rule's optimizer has ``train()`` and ``eval()``, as the
    reference's has; it starts in train mode."""

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
        if self.rule.averaged:
            defaults["train_mode"] = True
        super().__init__(params, defaults)

    def _hyperparameters(self, group: dict[str, Any]) -> HParams:
        """A param group's hyperparameters, validated (a scheduler may have changed lr)."""
        return self.params_model.model_validate(
            {k: group[k] for k in self.params_model.model_fields}
        )

    def _tensors(self, validated: HParams, device: torch.device) -> dict[str, Tensor]:
        """A group's validated hyperparameters as [1] tensors; ``lr`` the member's own (the
        step's lr, scheduled and times a parameter group's multiplier, comes apart, as in a
        pack)."""
        numeric = {**flat_hyperparameters(validated), "lr": float(self.defaults["lr"])}
        return {
            name: torch.tensor([value], dtype=torch.float64, device=device)
            for name, value in numeric.items()
        }

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """One step of every parameter with a gradient: group by group, or (a rule that
        reduces over all of a member's parameters: Prodigy) every group at once."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        batch = []
        for group in self.param_groups:
            if not group.get("train_mode", True):
                raise RuntimeError("step: the optimizer is in eval mode; call train() first")
            params = [p for p in group["params"] if p.grad is not None]
            if params:
                batch.append((group, params))
        if batch and self.rule.reduces:
            self._step_groups(batch)
        else:
            for item in batch:
                self._step_groups([item])
        return loss

    def _step_groups(self, batch: list[tuple[dict[str, Any], list[Tensor]]]) -> None:
        """One step of these groups' parameters that have gradients, as a population of one
        whose scalars are the first group's (every group's, for a rule that reduces)."""
        rule = self.rule
        device = batch[0][1][0].device
        validated = [self._hyperparameters(group) for group, _ in batch]  # once a step
        hyperparameters = [self._tensors(v, device) for v in validated]
        step, scalars = self._scalars(*batch[0], hyperparameters[0])
        variants = [rule.variant(v) for v in validated]
        if any(v[1:] != variants[0][1:] for v in variants):
            raise ValueError(
                f"param_groups: {type(self).__name__} steps every group at once, so they "
                "must share their flags (all but lr and weight_decay)"
            )
        role_maps = [self._roles(group) for group, _ in batch]  # once a step, as validation
        views, grads, states, casts, roles = [], [], [], [], []
        for (group, params), variant, tensors, role_of in zip(
            batch, variants, hyperparameters, role_maps, strict=True
        ):
            coefficients = rule.coefficients(
                tensors,
                torch.tensor([float(group["lr"])], dtype=torch.float64, device=device),
                torch.tensor([step], dtype=torch.float64, device=device),
                scalars,
            )
            for p in params:
                slots = rule.param_slots(variant, p.unsqueeze(0), role_of[id(p)])
                state = self.state[p]
                if not all(slot in state for slot in slots):
                    for slot in slots:
                        value = rule.init_slot(slot, p.unsqueeze(0), tensors)[0]
                        state[slot] = value.flatten() if slot in rule.flat_slots else value
                shape = (-1,) + (1,) * p.dim()
                views.append(p.unsqueeze(0))
                grads.append(p.grad.unsqueeze(0))  # type: ignore[union-attr]
                states.append({slot: shaped_like(state[slot], p).unsqueeze(0) for slot in slots})
                casts.append(
                    {k: v.to(p.device, p.dtype).view(shape) for k, v in coefficients.items()}
                )
                roles.append(role_of[id(p)])
        # weight decay's path is on where any group decays (a factor of exactly 1 elsewhere)
        variant = (any(v[0] for v in variants), *variants[0][1:])
        rule.apply_all(variant, views, grads, states, casts, tuple(roles), scalars)
        for (group, params), role_of in zip(batch, role_maps, strict=True):
            self._save(group, params, role_of, step, scalars)

    def _roles(self, group: dict[str, Any]) -> dict[int, str]:
        """Each of a group's parameters' role in the rule, by id."""
        every = group["params"]
        roles = group.get("roles") or self.rule.roles(None, [tuple(p.shape) for p in every])
        return dict(zip(map(id, every), roles, strict=True))

    def _scalars(
        self, group: dict[str, Any], params: list[Tensor], hyperparameters: dict[str, Tensor]
    ) -> tuple[float, dict[str, Tensor]]:
        """This step's number and the rule's scalars before it, from where the reference keeps
        them: the param group, or the first parameter's state."""
        rule = self.rule
        if rule.group_scalars:
            done, saved = float(group.get("k", 0)), group
        else:  # every parameter that keeps a step has the same (Muon's matrices keep none)
            steps = [float(self.state[p]["step"]) for p in params if "step" in self.state[p]]
            done, saved = max(steps, default=0.0), self.state[params[0]]
        initial = rule.initial_scalars(hyperparameters)
        scalars = {
            name: torch.tensor(
                [float(saved.get(name, initial[name]))],
                dtype=torch.float64,
                device=hyperparameters["lr"].device,
            )
            for name in rule.scalars
        }
        return done + 1, scalars

    def _save(
        self,
        group: dict[str, Any],
        params: list[Tensor],
        role_of: dict[int, str],
        step: float,
        scalars: dict[str, Tensor],
    ) -> None:
        """The step count and scalars after a step, where the reference keeps them."""
        rule = self.rule
        if rule.group_scalars:
            group["k"] = int(step)
            group.update({name: float(value[0]) for name, value in scalars.items()})
        for p in params:
            state = self.state[p]
            if rule.role_has_step(role_of[id(p)]):
                state["step"] = torch.tensor(step, dtype=_scalar_dtype())
            if not rule.group_scalars:
                for name, value in scalars.items():
                    state[name] = torch.tensor(float(value[0]), dtype=_scalar_dtype())

    @torch.no_grad()
    def eval(self) -> None:
        """Parameters to what evaluation sees (an averaged rule's x); no-op for the others."""
        self._swap(to_eval=True)

    @torch.no_grad()
    def train(self) -> None:
        """Parameters back to what training steps (an averaged rule's y)."""
        self._swap(to_eval=False)

    def _swap(self, *, to_eval: bool) -> None:
        if not self.rule.averaged:
            return
        for group in self.param_groups:
            if group["train_mode"] != to_eval:  # already there
                continue
            moved = [p for p in group["params"] if "z" in self.state[p]]
            if moved:
                hyperparameters = self._tensors(self._hyperparameters(group), moved[0].device)
                weight = self.rule.swap_weight(hyperparameters, to_eval=to_eval).squeeze(0)
                for p in moved:
                    p.lerp_(self.state[p]["z"], weight.to(p.dtype))
            group["train_mode"] = not to_eval


def set_mode(optimizer: object, *, train: bool) -> None:
    """``optimizer.train()`` (or ``eval()``) where it has the method (the schedule-free
    families' optimizers, a population, the schedulefree package's); others are left alone."""
    method = getattr(optimizer, "train" if train else "eval", None)
    if callable(method):
        method()


@contextmanager
def at_average(optimizer: object) -> Iterator[None]:
    """Within the block, the parameters are what evaluation and checkpoints see (a
    schedule-free optimizer's average x: ``eval()``), then back to what training steps
    (``train()``); optimizers without the two methods are left alone."""
    set_mode(optimizer, train=False)
    try:
        yield
    finally:
        set_mode(optimizer, train=True)


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
