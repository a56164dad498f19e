"""PopulationOptimizer: K members, each with its own optimizer family and hyperparameters,
updating stacked parameters of shape [K, ...] in one vectorised step."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from optisweep.optimizers.clipping import clip_coefficients, member_grad_norms
from optisweep.optimizers.flat import FlatParameters
from optisweep.optimizers.groups import ApplyFn, MemberGroup
from optisweep.optimizers.members import MemberConfig, MemberExport
from optisweep.optimizers.param_groups import ParamInfo, assign, overrides_for, torch_order
from optisweep.optimizers.registry import get_spec
from optisweep.optimizers.rules.base import Variant, shaped_like
from optisweep.optimizers.schedules import ScheduleTable

_RECOMPILE_LIMIT = 128

AHEAD = 64
"""Steps of per-step schedules computed at once."""


def _scalar_dtype() -> torch.dtype:
    # torch.optim keeps scalar state (step, mu_product) in float64 only under a float64 default.
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


class PopulationOptimizer:
    """Updates K stacked models at once; member k has its own family and hyperparameters.

    ``params`` are tensors of shape [K, ...] (member first). Members of the same family and code
    path are updated together with hyperparameters held as [K, 1, ...] tensors. Per member:
    lr schedule (per epoch: advanced by ``advance_schedules``; per step: by ``step``),
    gradient clipping by global norm,
    freezing, and export as ordinary params plus a torch.optim state dict.
    With ``compile=True`` each update rule runs as one torch.compile'd kernel (eager on failure).
    Given ``flat`` (whose ``params`` are then the parameters), a step whose gradients are in
    its buffer updates that one [K, N] tensor per group instead of each parameter tensor
    (when every member's rule is elementwise: Adafactor's is not).
    """

    def __init__(
        self,
        params: Iterable[Tensor],
        members: Sequence[MemberConfig | Mapping[str, Any]],
        *,
        compile: bool = False,
        flat: FlatParameters | None = None,
        param_info: Sequence[ParamInfo] | None = None,
    ) -> None:
        self.params = list(params)
        if flat is not None and (
            len(flat.params) != len(self.params)
            or any(p is not q for p, q in zip(flat.params, self.params, strict=False))
        ):
            raise ValueError("flat: its params must be the params given, in order")
        self._flat = flat
        self.members = [MemberConfig.model_validate(m) for m in members]
        size = len(self.members)
        if size == 0:
            raise ValueError("members: a population needs at least one member")
        if not self.params:
            raise ValueError("params: a population needs at least one parameter tensor")
        for i, p in enumerate(self.params):
            if p.dim() == 0 or p.shape[0] != size:
                raise ValueError(
                    f"params[{i}]: expected shape [{size}, ...] (one row per member), "
                    f"got {list(p.shape)}"
                )
            if not p.is_floating_point():
                raise ValueError(f"params[{i}]: expected a floating-point tensor, got {p.dtype}")
            if p.device != self.params[0].device:
                raise ValueError(
                    f"params[{i}]: on {p.device}, but params[0] is on {self.params[0].device}"
                )
        self.device = self.params[0].device
        self.size = size
        hyperparameters = [m.validated() for m in self.members]
        self._param_info = _checked_param_info(param_info, self.members, len(self.params))
        self._shapes = [tuple(p.shape[1:]) for p in self.params]
        """One member's parameter shapes."""
        by_key: dict[tuple[str, Variant], list[int]] = {}
        for k, member in enumerate(self.members):
            by_key.setdefault((member.optimizer, member.variant()), []).append(k)
        # A group steps the one flat buffer when its rule is elementwise and all its members'
        # parameters share their hyperparameters (no parameter groups); the others step
        # flat's parameters (views of it) one tensor at a time, in the same step.
        self._groups = [
            MemberGroup(
                get_spec(name),
                variant,
                rows,
                [hyperparameters[k] for k in rows],
                self.params,
                flat
                if get_spec(name).rule.elementwise
                and not any(self.members[k].param_groups for k in rows)
                else None,
                overrides=None
                if self._param_info is None
                else overrides_for([self.members[k].param_groups for k in rows], self._param_info),
                roles=get_spec(name).rule.roles(self._param_info, self._shapes),
            )
            for (name, variant), rows in by_key.items()
        ]
        self._group_of = {k: (g, row) for g in self._groups for row, k in enumerate(g.members)}

        self._frozen = torch.zeros(size, dtype=torch.bool)
        self._schedule_steps = torch.zeros(size, dtype=torch.int64)
        self._schedules = ScheduleTable([m.schedule for m in self.members])
        self._per_step = bool(self._schedules.per_step.any())
        self._ahead: Tensor | None = None
        """Per-step schedules' multipliers for the next steps ([rows, K], on the device)."""
        self._ahead_row = 0
        self._ahead_moving = torch.zeros(size, dtype=torch.int64)
        self._refresh()
        clip = [m.clip_norm if m.clip_norm is not None else float("inf") for m in self.members]
        self._clip_norms = (
            torch.tensor(clip, dtype=torch.float64, device=self.device)
            if any(m.clip_norm is not None for m in self.members)
            else None
        )
        self._compile = compile
        self._eval = False
        """Whether averaged members' parameters are x (``eval()``) rather than y."""
        self._compiled: dict[int, ApplyFn] = {}
        self._eager: set[int] = set()
        """Rules (by id) whose compiled step failed: they step eagerly from then on."""

    # -- training -------------------------------------------------------------------------

    def _apply_fn(self, group: MemberGroup) -> ApplyFn:
        rule = group.spec.rule
        if not self._compile:
            return rule.apply_all
        key = id(rule)
        if key not in self._compiled:
            # One compiled graph per group and step, holding every parameter's update. All rules
            # share UpdateRule.apply_all's code, so dynamo sees one function with a graph per
            # (family, variant, shapes): its default limit of 8 graphs per function is too low.
            dynamo_config = torch._dynamo.config
            dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, _RECOMPILE_LIMIT)
            compiled = torch.compile(rule.apply_all)

            def run(*args: Any) -> None:
                # Compilation happens before the kernel touches its inputs, so falling back to
                # eager after a failure (no C++ compiler, a backend bug for one rule's graph)
                # updates once. Only this rule falls back; the others stay compiled.
                if key not in self._eager:
                    try:
                        compiled(*args)
                        return
                    except Exception as exc:
                        warnings.warn(
                            f"torch.compile failed for {type(rule).__name__} "
                            f"({exc.__class__.__name__}: {exc}); using eager updates for it",
                            RuntimeWarning,
                            stacklevel=3,
                        )
                        self._eager.add(key)
                rule.apply_all(*args)

            self._compiled[key] = run
        return self._compiled[key]

    @torch.no_grad()
    def step(self, grads: Sequence[Tensor | None] | None = None) -> None:
        """One update of every unfrozen member, from ``grads`` or each parameter's ``.grad``."""
        if self._eval:
            raise RuntimeError("step: the population is in eval mode; call train() first")
        flat = self._flat
        if grads is None and flat is not None and flat.grads_in_place():
            grad = self._clipped([flat.grad])[0]
            assert grad is not None
            views: list[Tensor | None] = []  # per-tensor blocks, for groups that need them
            for group in self._groups:
                apply = self._apply_fn(group)
                if group.flat:
                    group.step_once([flat.data], [grad], self._lr_multipliers, apply, flat=True)
                else:
                    views = views or list(flat.views(grad))
                    group.step_once(self.params, views, self._lr_multipliers, apply)
        else:
            grad_list = list(grads) if grads is not None else [p.grad for p in self.params]
            if len(grad_list) != len(self.params):
                raise ValueError(
                    f"grads: expected {len(self.params)} tensors, got {len(grad_list)}"
                )
            grad_list = self._clipped(grad_list)
            for group in self._groups:
                apply = self._apply_fn(group)
                group.step_once(self.params, grad_list, self._lr_multipliers, apply)
        if self._per_step:
            self._step_schedules()

    def _clipped(self, grad_list: list[Tensor | None]) -> list[Tensor | None]:
        """The gradients clipped by each member's global norm (as given without clipping)."""
        present = [g for g in grad_list if g is not None]
        if self._clip_norms is None or not present:
            return grad_list
        coef = clip_coefficients(member_grad_norms(present), self._clip_norms)
        return [
            None if g is None else g * coef.to(g.dtype).view((-1,) + (1,) * (g.dim() - 1))
            for g in grad_list
        ]

    def zero_grad(self) -> None:
        """Clear the gradients before a backward pass: zero the flat buffer, or set to None."""
        if self._flat is not None:
            self._flat.zero_grad()
        else:
            for param in self.params:
                param.grad = None

    def advance_schedules(self) -> None:
        """Advance every unfrozen member's per-epoch lr schedule by one (call after an
        epoch); per-step schedules advance with each ``step``."""
        self._schedule_steps[~self._schedules.per_step & ~self._frozen] += 1
        self._refresh()

    def _refresh(self) -> None:
        """Each member's multiplier at its counter, after a change to counters or freezing."""
        self._lr_multipliers = self._schedules.multipliers(self._schedule_steps).to(self.device)
        self._ahead = None

    def _step_schedules(self) -> None:
        """Advance the per-step schedules of unfrozen members by one. Their multipliers are
        computed for the next ``AHEAD`` steps at once, so a step reads one row of them."""
        if self._ahead is None or self._ahead_row + 1 >= len(self._ahead):
            moving = (self._schedules.per_step & ~self._frozen).to(torch.int64)
            counters = self._schedule_steps + moving * torch.arange(AHEAD + 1)[:, None]
            self._ahead = self._schedules.multipliers(counters).to(self.device)
            self._ahead_moving, self._ahead_row = moving, 0
        self._ahead_row += 1
        self._schedule_steps += self._ahead_moving
        self._lr_multipliers = self._ahead[self._ahead_row]

    # -- members ----------------------------------------------------------------------------

    def _member_indices(self, members: int | Iterable[int]) -> list[int]:
        indices = [members] if isinstance(members, int) else list(members)
        for k in indices:
            if not 0 <= k < self.size:
                raise ValueError(f"member: expected an index in [0, {self.size}), got {k}")
        return indices

    def freeze(self, members: int | Iterable[int]) -> None:
        """Stop updating these members: their parameters, state and schedule stay as they are."""
        self._frozen[self._member_indices(members)] = True
        self._ahead = None  # they no longer advance
        for group in self._groups:
            group.set_frozen(self._frozen)

    def unfreeze(self, members: int | Iterable[int]) -> None:
        """Resume updating these members."""
        self._frozen[self._member_indices(members)] = False
        self._ahead = None
        for group in self._groups:
            group.set_frozen(self._frozen)

    @property
    def averaged(self) -> bool:
        """Whether some member evaluates at other parameters than it trains (schedule-free)."""
        return any(group.spec.rule.averaged for group in self._groups)

    @property
    def frozen(self) -> Tensor:
        """[K] bool: which members are frozen."""
        return self._frozen.clone()

    @property
    def lr_multipliers(self) -> Tensor:
        """[K] float64: each member's current schedule multiplier."""
        return self._lr_multipliers.clone()

    def lr(self, member: int) -> float:
        """The learning rate member ``member`` uses on its next step."""
        (k,) = self._member_indices(member)
        group, row = self._group_of[k]
        return float(group.hyperparameters["lr"][row] * self._lr_multipliers[k])

    def export_member(self, member: int) -> MemberExport:
        """Member ``member`` as ordinary parameters and a torch.optim state dict; an averaged
        rule's (schedule-free) parameters as evaluation sees them (x), its optimizer in eval
        mode."""
        (k,) = self._member_indices(member)
        group, row = self._group_of[k]
        config = self.members[k]
        rule = group.spec.rule
        params = [p[k].detach().clone() for p in self.params]
        if rule.averaged and not self._eval:
            weight = rule.swap_weight(self._row_hyperparameters(group, row), to_eval=True)
            for p, state in zip(params, group.state, strict=True):
                p.lerp_(state["z"][row], weight.to(p.dtype)[0])
        optimizer = config.torch_optimizer(params, self._param_info)
        step = int(group.step[row])
        for torch_group in optimizer.param_groups:  # as an LR scheduler leaves them
            torch_group["initial_lr"] = torch_group["lr"]
            torch_group["lr"] = torch_group["lr"] * float(self._lr_multipliers[k])
            if rule.averaged:
                torch_group["train_mode"] = False
            if rule.group_scalars:
                torch_group["k"] = step
                torch_group.update({n: float(v[row]) for n, v in group.scalars.items()})
        for p, state, role in zip(params, group.state, group.roles, strict=True):
            entry: dict[str, Any] = {}
            if step > 0 or rule.role_has_step(role):
                entry = {slot: value[row].detach().clone() for slot, value in state.items()}
                for slot in set(rule.flat_slots) & set(entry):  # as the reference keeps them
                    entry[slot] = entry[slot].flatten()
            if rule.role_has_step(role):
                entry["step"] = torch.tensor(float(step), dtype=_scalar_dtype())
            if not rule.group_scalars:
                for name, value in group.scalars.items():
                    entry[name] = torch.tensor(float(value[row]), dtype=_scalar_dtype())
            if entry:
                optimizer.state[p] = entry
        return MemberExport(
            config=config,
            params=params,
            optimizer_state=optimizer.state_dict(),
            step=step,
            schedule_step=int(self._schedule_steps[k]),
            lr_multiplier=float(self._lr_multipliers[k]),
        )

    @torch.no_grad()
    def load_member(self, member: int, export: MemberExport) -> None:
        """Overwrite member ``member`` with an export of the same family and code path."""
        (k,) = self._member_indices(member)
        group, row = self._group_of[k]
        if (export.config.optimizer, export.config.variant()) != (
            group.spec.name,
            group.variant,
        ):
            raise ValueError(
                f"member {k}: cannot load a {export.config.optimizer!r} export into a "
                f"{group.spec.name!r} member with a different code path"
            )
        if len(export.params) != len(self.params):
            raise ValueError(
                f"export: expected {len(self.params)} parameter tensors, got {len(export.params)}"
            )
        torch_state = export.optimizer_state["state"]
        first_group = export.optimizer_state["param_groups"][0]
        row_hyperparameters = self._row_hyperparameters(group, row)
        # torch.optim numbers parameters group by group: the member's own, then each rule's.
        position = {i: n for n, i in enumerate(self._torch_order(k))}
        for i, (p, value, state) in enumerate(
            zip(self.params, export.params, group.state, strict=True)
        ):
            p[k].copy_(value)
            entry = torch_state.get(position[i], {})
            for slot, tensor in state.items():
                if slot in entry:  # a flattened slot (Prodigy's s, p0) as the parameter's shape
                    tensor[row].copy_(shaped_like(entry[slot], tensor[row]))
                else:  # torch creates some state lazily on the first step
                    fresh = group.spec.rule.init_slot(slot, p[k : k + 1], row_hyperparameters)
                    tensor[row].copy_(fresh[0])
            exported_x = not first_group.get("train_mode", True)
            if group.spec.rule.averaged and exported_x != self._eval:
                # an averaged member's export holds x (y): to what this population holds now
                weight = group.spec.rule.swap_weight(row_hyperparameters, to_eval=self._eval)
                p[k].lerp_(state["z"][row], weight.to(p.dtype)[0])
        saved = first_group if group.spec.rule.group_scalars else torch_state.get(position[0], {})
        initial = group.spec.rule.initial_scalars(row_hyperparameters)
        for name, value in group.scalars.items():
            value[row] = float(saved.get(name, initial[name]))
        group.step[row] = float(export.step)
        self._schedule_steps[k] = export.schedule_step
        self._refresh()

    @staticmethod
    def _row_hyperparameters(group: MemberGroup, row: int) -> dict[str, Tensor]:
        return {name: value[row : row + 1] for name, value in group.hyperparameters.items()}

    @torch.no_grad()
    def eval(self) -> None:
        """Parameters to what evaluation sees: schedule-free members' average x (the other
        families' parameters are what they train); ``step`` refuses until ``train()``."""
        if not self._eval:
            for group in self._groups:
                group.swap(self.params, to_eval=True)
            self._eval = True

    @torch.no_grad()
    def train(self) -> None:
        """Parameters back to what training steps (schedule-free members' y)."""
        if self._eval:
            for group in self._groups:
                group.swap(self.params, to_eval=False)
            self._eval = False

    def _torch_order(self, k: int) -> list[int]:
        """Member ``k``'s parameter indices in the order its torch.optim state dict has them."""
        rules = self.members[k].param_groups
        if not rules or self._param_info is None:
            return list(range(len(self.params)))
        return torch_order(assign(rules, self._param_info), len(rules))

    # -- checkpoints ------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue bit-identically (the parameters themselves excepted)."""
        return {
            "members": [m.model_dump(mode="json") for m in self.members],
            "frozen": self._frozen.clone(),
            "schedule_steps": self._schedule_steps.clone(),
            "groups": [
                {
                    "members": list(g.members),
                    "step": g.step.clone(),
                    "scalars": {k: v.clone() for k, v in g.scalars.items()},
                    "state": [{k: v.clone() for k, v in s.items()} for s in g.state],
                }
                for g in self._groups
            ],
        }

    @torch.no_grad()
    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a state_dict() taken from a population with the same members."""
        members = [m.model_dump(mode="json") for m in self.members]
        if state_dict["members"] != members:
            raise ValueError("state_dict: its members differ from this population's members")
        for group, saved in zip(self._groups, state_dict["groups"], strict=True):
            group.step.copy_(saved["step"])
            for name, value in group.scalars.items():
                value.copy_(saved["scalars"][name])
            for state, saved_state in zip(group.state, saved["state"], strict=True):
                for slot, tensor in state.items():
                    tensor.copy_(saved_state[slot])
        self._frozen.copy_(state_dict["frozen"])
        self._schedule_steps.copy_(state_dict["schedule_steps"])
        for group in self._groups:
            group.set_frozen(self._frozen)
        self._refresh()


def _checked_param_info(
    param_info: Sequence[ParamInfo] | None, members: Sequence[MemberConfig], count: int
) -> list[ParamInfo] | None:
    """``param_info`` when it describes ``count`` parameters; ValueError when members have
    parameter groups and nothing describes the parameters they select from."""
    if param_info is None:
        if any(m.param_groups for m in members):
            raise ValueError(
                "param_info: members have param_groups; describe the parameters "
                "(optisweep.optimizers.describe_params(model)) so their rules can select them"
            )
        return None
    if len(param_info) != count:
        raise ValueError(f"param_info: expected {count} entries, got {len(param_info)}")
    return list(param_info)
