"""A group of a population's members that share a family and a code path: they update
together, through views of the stacked parameters when their rows are contiguous."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from optisweep.optimizers.flat import FlatParameters
from optisweep.optimizers.param_groups import Overrides
from optisweep.optimizers.registry import OptimizerSpec
from optisweep.optimizers.rules.base import Variant, flat_hyperparameters
from optisweep.optimizers.schemas import HParams

ApplyFn = Callable[
    [
        Variant,
        list[Tensor],
        list[Tensor],
        list[dict[str, Tensor]],
        list[dict[str, Tensor]],
        tuple[str, ...],
        dict[str, Tensor],
    ],
    None,
]


class MemberGroup:
    """Members that share a family and a code path (variant); they update together."""

    def __init__(
        self,
        spec: OptimizerSpec,
        variant: Variant,
        members: list[int],
        hyperparameters: list[HParams],
        params: list[Tensor],
        flat: FlatParameters | None = None,
        overrides: Sequence[Overrides | None] | None = None,
        roles: tuple[str, ...] | None = None,
    ) -> None:
        device = params[0].device
        self.roles = roles or ("",) * len(params)
        """Each parameter's role in the rule (Muon's "muon" or "adamw"; "" for most rules)."""
        self.spec = spec
        self.variant = variant
        self.members = members
        self.index = torch.tensor(members, dtype=torch.int64, device=device)
        contiguous = members == list(range(members[0], members[0] + len(members)))
        self.span = slice(members[0], members[-1] + 1) if contiguous else None
        numeric = [flat_hyperparameters(h) for h in hyperparameters]
        self.hyperparameters = {
            name: torch.tensor([f[name] for f in numeric], dtype=torch.float64, device=device)
            for name in numeric[0]
        }
        # Parameter groups: each parameter's index into ``override_values`` (None: the
        # members' own hyperparameters), one [k] weight decay and lr multiplier per distinct one.
        distinct = list(dict.fromkeys(o for o in overrides or () if o is not None))
        self.override_of = [
            None if o is None else distinct.index(o) for o in overrides or [None] * len(params)
        ]
        self.override_values = [
            {
                "weight_decay": torch.tensor(o.weight_decay, dtype=torch.float64, device=device),
                "lr_multiplier": torch.tensor(o.lr_multiplier, dtype=torch.float64, device=device),
            }
            for o in distinct
        ]
        self.step = torch.zeros(len(members), dtype=torch.float64, device=device)
        self.scalars = spec.rule.initial_scalars(self.hyperparameters)
        # Each slot per parameter tensor, or (flat) one [k, N] tensor whose blocks are the
        # per-parameter state that exports, loads and state dicts read and write.
        sources = [flat.data] if flat is not None else params
        initial = [
            {
                slot: spec.rule.init_slot(slot, rows, self.hyperparameters)
                for slot in spec.rule.param_slots(variant, rows, role)
            }
            for rows, role in zip(map(self._rows, sources), self.roles, strict=False)
        ]
        self.flat = flat is not None
        """Whether this group steps the flat buffer (its state one [k, N] tensor per slot)."""
        self.flat_state: dict[str, Tensor] = initial[0] if flat is not None else {}
        self.state = initial
        if flat is not None:
            blocks = {slot: flat.views(value) for slot, value in self.flat_state.items()}
            self.state = [
                {slot: views[i] for slot, views in blocks.items()} for i in range(len(params))
            ]
        self.active: Tensor | None = None
        """Local rows that still train, or None when all do (the fast path)."""

    def swap(self, params: Sequence[Tensor], *, to_eval: bool) -> None:
        """An averaged rule's members' parameters to x (``to_eval``) or back to y, each by
        its own beta; other rules' are left as they are."""
        rule = self.spec.rule
        if not rule.averaged:
            return
        weight = rule.swap_weight(self.hyperparameters, to_eval=to_eval)
        for param, state in zip(params, self.state, strict=True):
            w = weight.to(param.dtype).view((-1,) + (1,) * (param.dim() - 1))
            if self.span is not None:
                param[self.span].lerp_(state["z"], w)
            else:
                rows = param.index_select(0, self.index).lerp_(state["z"], w)
                param.index_copy_(0, self.index, rows)

    def _rows(self, tensor: Tensor) -> Tensor:
        return tensor[self.span] if self.span is not None else tensor.index_select(0, self.index)

    def set_frozen(self, frozen: Tensor) -> None:
        """Recompute which local rows are active from the population's frozen mask."""
        local_frozen = frozen[self.index.cpu()]
        if not bool(local_frozen.any()):
            self.active = None
        else:
            rows = torch.nonzero(~local_frozen).flatten()
            self.active = rows.to(self.index.device)

    def step_once(
        self,
        params: Sequence[Tensor],
        grads: Sequence[Tensor | None],
        lr_multipliers: Tensor,
        apply: ApplyFn,
        *,
        flat: bool = False,
    ) -> None:
        """Advance every active member of the group by one step; with ``flat``, ``params`` and
        ``grads`` are the one [K, N] buffer each and the state is ``flat_state``."""
        rule = self.spec.rule
        active = self.active
        if active is not None and active.numel() == 0:
            return
        if active is None:
            self.step += 1
            step, scalars = self.step, self.scalars
            hyperparameters = self.hyperparameters
            lr = hyperparameters["lr"] * lr_multipliers[self.index]
        else:
            step = self.step[active] + 1
            self.step.index_copy_(0, active, step)
            scalars = {name: value[active] for name, value in self.scalars.items()}
            hyperparameters = {name: value[active] for name, value in self.hyperparameters.items()}
            lr = hyperparameters["lr"] * lr_multipliers[self.index[active]]
        # the scalars before this step, for each parameter group's coefficients (none: no copy)
        before = (
            {name: value.clone() for name, value in scalars.items()} if self.override_values else {}
        )
        coefficients: dict[int | None, dict[str, Tensor]] = {
            None: rule.coefficients(hyperparameters, lr, step, scalars)
        }
        for index, values in enumerate(self.override_values):
            selected = {k: v if active is None else v[active] for k, v in values.items()}
            coefficients[index] = rule.coefficients(
                rule.override_hyperparameters(hyperparameters, selected["weight_decay"]),
                lr * selected["lr_multiplier"],
                step,
                {name: value.clone() for name, value in before.items()},
            )
        cast: dict[tuple[int | None, torch.dtype, int], dict[str, Tensor]] = {}
        views: list[tuple[Tensor, Tensor, dict[str, Tensor], dict[str, Tensor]]] = []
        writebacks: list[tuple[Tensor, Tensor, dict[str, Tensor], dict[str, Tensor]]] = []
        fast = active is None and self.span is not None
        rows = self.index if active is None else self.index[active]
        states = [self.flat_state] if flat else self.state
        override_of: list[int | None] = [None] if flat else self.override_of
        roles: list[str] = []
        for param, grad, state, o, role in zip(
            params, grads, states, override_of, self.roles, strict=False
        ):
            if grad is None:
                continue
            roles.append(role)
            key = (o, param.dtype, param.dim())
            if key not in cast:
                shape = (-1,) + (1,) * (param.dim() - 1)
                cast[key] = {k: v.to(param.dtype).view(shape) for k, v in coefficients[o].items()}
            if fast:
                views.append((param[self.span], grad[self.span], state, cast[key]))
                continue
            param_rows = param.index_select(0, rows)
            state_rows = state if active is None else {k: v[active] for k, v in state.items()}
            views.append((param_rows, grad.index_select(0, rows), state_rows, cast[key]))
            writebacks.append((param, param_rows, state, state_rows))
        if views:
            apply(
                self.variant,
                [v[0] for v in views],
                [v[1] for v in views],
                [v[2] for v in views],
                [v[3] for v in views],
                tuple(roles),
                scalars,
            )
        if active is not None:  # the scalars the coefficients (and a reducing rule) moved
            for name, value in scalars.items():
                self.scalars[name].index_copy_(0, active, value)
        for param, param_rows, state, state_rows in writebacks:
            param.index_copy_(0, rows, param_rows)
            if active is not None:
                for slot, value in state_rows.items():
                    state[slot].index_copy_(0, active, value)
