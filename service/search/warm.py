"""Warm start: what a new sweep's searcher learns from earlier sweeps' finished trials
(``search.warm_start``).

An earlier trial is used only where it fits the new space: its family is searched, each
searched value lies in its range (or among the listed values), and the configuration the new
space builds from those values is the earlier trial's own, fixed hyperparameters and settings
included. A trial that does not fit, or that trained another workload, is counted with the
reason, never silently used. One rule (``fit``) decides, for every searcher and for the report.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from optisweep.optimizers import get_spec
from optisweep.service.search.base import searched_axes, suggestion_from
from optisweep.service.sweeps.schemas import Choice, FloatRange, IntRange, Param, Space
from optisweep.workers.states import TrialState


@dataclass(frozen=True)
class EarlierTrial:
    """A finished trial of an earlier sweep, as a warm start reads it."""

    sweep_id: int
    number: int
    optimizer: str
    hyperparameters: dict[str, Any]
    settings: dict[str, Any]
    outcome: TrialState
    """How it ended (one of the states searchers are told)."""
    objective: float | None
    also: tuple[float | None, ...] = ()
    """Its final values of the further objectives, in the new sweep's order."""
    same_workload: bool = True
    """Whether it trained the new sweep's workload (name, config and epochs)."""

    @property
    def origin(self) -> str:
        """Where it came from, as trials and reports say it."""
        return f"sweep {self.sweep_id} trial {self.number}"


def _trial_value(trial: EarlierTrial, target: str) -> Any:
    """The earlier trial's value of a name ``to_suggestion`` reads (``lr``, ``beta1``,
    ``adam.eps``, ``batch_size``, ``schedule.kind``, ``param_groups.0.weight_decay``)."""
    hyperparameters = trial.hyperparameters
    if target == "lr":
        return hyperparameters.get("lr")
    if target in ("beta1", "beta2"):
        where = getattr(get_spec(trial.optimizer), target)
        if where is None:
            return None
        value = hyperparameters.get(where.field)
        return value if where.index is None or value is None else value[where.index]
    if target.startswith(f"{trial.optimizer}."):
        return hyperparameters.get(target.split(".", 1)[1])
    if target.startswith("schedule."):
        return (trial.settings.get("schedule") or {}).get(target.split(".", 1)[1])
    return trial.settings.get(target)


def _raw(param: Param, value: Any) -> Any | None:
    """The value as the searcher draws it, or None where it lies outside ``param``."""
    match param:
        case Choice():  # the listed value itself, so a grid finds its point
            return next((listed for listed in param.values if _same(value, listed)), None)
        case IntRange():
            ok = isinstance(value, int) and param.low <= value <= param.high
            return value if ok else None
        case FloatRange():
            if not isinstance(value, int | float) or not param.low <= value <= param.high:
                return None
            return 1 - value if param.log_one_minus else float(value)
    return None


def _ignored(param: Param) -> Any:
    """A value inside ``param``, drawn for a family that ignores it."""
    match param:
        case Choice():
            return param.values[0]
        case FloatRange(log_one_minus=True):
            return 1 - param.high
        case IntRange() | FloatRange():
            return param.low
    raise TypeError(f"not a searched parameter: {param!r}")


def _same(a: Any, b: Any) -> bool:
    """Equal, floats to 1e-9 relative, lists and dicts item by item."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-15)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


def _differs(ours: dict[str, Any], theirs: dict[str, Any]) -> str | None:
    """The first key whose value differs between two configurations, or None."""
    for key in sorted(set(ours) | set(theirs)):
        if not _same(ours.get(key), theirs.get(key)):
            return key
    return None


def fit(space: Space, trial: EarlierTrial, *, shared: bool = False) -> dict[str, Any] | str:
    """The values a searcher of ``space`` would draw to suggest ``trial`` again (its
    ``optimizer`` and ``searched_axes``), or why the trial does not fit."""
    if not trial.same_workload:
        return "another workload"
    if trial.optimizer not in space.optimizers:
        return f"{trial.optimizer} not searched"
    params: dict[str, Any] = {"optimizer": trial.optimizer}
    spec = get_spec(trial.optimizer)
    for stored, (target, param) in searched_axes(space, trial.optimizer, shared=shared).items():
        if target in ("beta1", "beta2") and getattr(spec, target) is None:
            params[stored] = _ignored(param)  # a shared beta this family does not read
            continue
        raw = _raw(param, _trial_value(trial, target))
        if raw is None:
            return f"{target.removeprefix(trial.optimizer + '.')} outside the space"
        params[stored] = raw
    try:
        rebuilt = suggestion_from(space, params, shared=shared)
    except ValueError as exc:  # HyperparameterError: a combination the family refuses
        return f"refused: {str(exc).splitlines()[0]}"
    key = _differs(rebuilt.hyperparameters, trial.hyperparameters)
    if key is not None:
        return f"{key} differs"
    key = _differs(rebuilt.settings, trial.settings)
    return f"{key} differs" if key is not None else params


@dataclass(frozen=True)
class WarmStart:
    """The earlier trials a sweep's searcher is told, and the ones it is not, with why."""

    fitting: list[tuple[EarlierTrial, dict[str, Any]]]
    """Each fitting trial with the values its searcher draws for it."""
    left_out: dict[int, Counter[str]]
    """Source sweep -> reason -> how many of its trials were left out."""


def sort_fitting(space: Space, earlier: Sequence[EarlierTrial], *, shared: bool) -> WarmStart:
    """Split earlier trials into those that fit ``space`` and those left out, with why."""
    fitting: list[tuple[EarlierTrial, dict[str, Any]]] = []
    left_out: dict[int, Counter[str]] = {}
    for trial in earlier:
        found = fit(space, trial, shared=shared)
        if isinstance(found, str):
            left_out.setdefault(trial.sweep_id, Counter())[found] += 1
        else:
            fitting.append((trial, found))
    return WarmStart(fitting, left_out)


def ranked(trials: Sequence[EarlierTrial], *, maximize: bool) -> list[EarlierTrial]:
    """The completed trials with a finite objective, best first (ties: the older first)."""
    scored = [
        t
        for t in trials
        if t.outcome in (TrialState.COMPLETED, TrialState.STOPPED)
        and t.objective is not None
        and math.isfinite(t.objective)
    ]
    sign = -1.0 if maximize else 1.0
    return sorted(scored, key=lambda t: (sign * (t.objective or 0.0), t.sweep_id, t.number))


__all__ = ["EarlierTrial", "WarmStart", "fit", "ranked", "sort_fitting"]
