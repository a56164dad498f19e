"""The searcher interface (after Ray Tune's ``Searcher``), what searchers suggest, and how a
configuration trained over several seeds ends."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from optisweep.optimizers import get_spec
from optisweep.service.sweeps.group_space import group_axes
from optisweep.service.sweeps.schedule_space import SCHEDULE_FIELDS, SCHEDULE_PARAMETERS
from optisweep.service.sweeps.schemas import Choice, FloatRange, IntRange, Param, Space
from optisweep.workers.states import TrialState


@dataclass(frozen=True)
class Suggestion:
    """One trial configuration: a family and its full, validated hyperparameters."""

    optimizer: str
    hyperparameters: dict[str, Any]
    search_params: dict[str, Any] | None = None
    """What an adaptive searcher drew (its own names and scales), stored with the trial so a
    restarted searcher can be rebuilt; None for grid and random search."""
    settings: dict[str, Any] = field(default_factory=dict)
    """Training settings searched beside the hyperparameters (``SETTINGS``: batch size, clip
    norm); only those the sweep sets."""
    defaults: bool = False
    """A trial of the defaults-first stage: the family at its published defaults, not a
    configuration the searcher chose."""
    origin: str | None = None
    """Where a configuration taken from an earlier sweep (``search.warm_start``) came from:
    ``sweep 5 trial 12``; None for the searcher's own."""


@dataclass(frozen=True)
class StoredTrial:
    """What a restarted searcher needs of one stored trial (or configuration)."""

    number: int
    search_params: dict[str, Any]
    outcome: TrialState | None
    """None while the trial is pending or running."""
    objective: float | None
    also: tuple[float | None, ...] = ()
    """The final values of the sweep's further objectives (``objective.also``), in order."""


class Searcher(Protocol):
    """Suggests configurations one at a time and hears how each ended.

    Its state is saved by the trials table itself (each trial's configuration and
    ``search_params``); ``restore`` rebuilds it from those rows after a restart.
    """

    adaptive: bool
    """Whether it learns from results (asked as trials end) or knows every configuration up
    front (the controller creates them all when the sweep starts)."""

    def suggest(self) -> Suggestion | None:
        """The next configuration (number = how many were suggested before), or None when
        there is none now (exhausted, or waiting for results)."""
        ...

    def on_result(self, number: int, epoch: int, value: float) -> None:
        """Configuration ``number`` reported its objective after ``epoch``."""
        ...

    def on_complete(
        self,
        number: int,
        outcome: TrialState,
        objective: float | None,
        also: tuple[float | None, ...] = (),
    ) -> None:
        """Configuration ``number`` ended, with its final objective (and, with several
        objectives, the final values of the others in ``also``)."""
        ...

    def restore(self, stored: list[StoredTrial]) -> None:
        """Take up where a searcher that suggested these configurations left off."""
        ...


class NonAdaptive:
    """What grid and random search share: results change nothing."""

    adaptive = False

    def on_result(self, number: int, epoch: int, value: float) -> None:
        """Ignored."""

    def on_complete(
        self,
        number: int,
        outcome: TrialState,
        objective: float | None,
        also: tuple[float | None, ...] = (),
    ) -> None:
        """Ignored."""


def combine(
    results: Sequence[tuple[TrialState | None, float | None]],
) -> tuple[TrialState | None, float | None]:
    """How a configuration trained over several seeds ended, and its mean objective.

    None while a repeat is still open; diverged if any repeat diverged; failed if all failed;
    otherwise completed (stopped if any was stopped early), the mean over finite objectives.
    """
    outcomes = {outcome for outcome, _ in results}
    if None in outcomes:
        return None, None
    values = [value for _, value in results if value is not None and math.isfinite(value)]
    mean = sum(values) / len(values) if values else None
    if TrialState.DIVERGED in outcomes:
        return TrialState.DIVERGED, mean
    if outcomes == {TrialState.FAILED}:
        return TrialState.FAILED, None
    ended = TrialState.STOPPED if TrialState.STOPPED in outcomes else TrialState.COMPLETED
    return ended, mean


SETTINGS = ("batch_size", "clip_norm")
"""Space fields that are training settings, not optimizer hyperparameters."""


def setting_axes(space: Space, optimizer: str) -> dict[str, Any]:
    """The settings this space sets (fixed or searched) for ``optimizer``'s trials, by name;
    its schedule's fields (with its overrides) as ``schedule.<field>``, searched group values
    as ``param_groups.<i>.<field>``."""
    axes = {name: getattr(space, name) for name in SETTINGS if getattr(space, name) is not None}
    axes.update(group_axes(space.param_groups))
    schedule = space.schedule_for(optimizer)
    if schedule is not None:
        for name in SCHEDULE_FIELDS:
            value = getattr(schedule, name)
            if value is not None:
                axes[f"schedule.{name}"] = value
    return axes


def _schedule(sampled: dict[str, Any]) -> dict[str, Any] | None:
    """The sampled ``schedule.*`` values as one schedule: its kind and the parameters that
    kind reads (the others are dropped, so a grid does not repeat a configuration)."""
    drawn = {
        name.split(".", 1)[1]: sampled.pop(name)
        for name in [key for key in sampled if key.startswith("schedule.")]
    }
    if not drawn:
        return None
    kind = drawn.get("kind", "constant")
    return {"kind": kind, **{k: drawn[k] for k in SCHEDULE_PARAMETERS[kind] if k in drawn}}


def to_suggestion(space: Space, optimizer: str, sampled: dict[str, Any]) -> Suggestion:
    """Map sampled lr/beta1/beta2/overrides onto the family's own fields and validate them;
    sampled settings (batch size, clip norm, schedule) go beside them."""
    schedule = _schedule(sampled)
    names = [*SETTINGS, *group_axes(space.param_groups)]
    settings = {name: sampled.pop(name) for name in names if name in sampled}
    if schedule is not None:
        settings["schedule"] = schedule
    spec = get_spec(optimizer)
    hyperparameters: dict[str, Any] = {"lr": sampled["lr"]} if "lr" in sampled else {}
    hyperparameters = spec.with_betas(
        hyperparameters, beta1=sampled.get("beta1"), beta2=sampled.get("beta2")
    )
    for name, value in sampled.items():
        if name.startswith(f"{optimizer}."):
            hyperparameters[name.split(".", 1)[1]] = value
    validated = spec.validate(hyperparameters)
    return Suggestion(optimizer, validated.model_dump(mode="json"), settings=settings)


SEARCHED = (FloatRange, IntRange, Choice)
"""The parameter kinds that are searched (any other space value is fixed)."""


def searched_axes(space: Space, optimizer: str, *, shared: bool) -> dict[str, tuple[str, Param]]:
    """The searched dimensions of one family's trials: stored name -> (the name
    ``to_suggestion`` reads, its parameter). ``shared``: lr and the betas are one dimension
    for every family (``lr``), else each family's own (``adam.lr``)."""
    spec = get_spec(optimizer)
    prefix = "" if shared else f"{optimizer}."
    overrides = space.family_overrides(optimizer)
    axes: dict[str, tuple[str, Param]] = {}
    if "lr" not in overrides:  # a family's own lr range (lr: auto) replaces the shared one
        axes[f"{prefix}lr"] = ("lr", space.searched_lr())
    for name, target in (("beta1", spec.beta1), ("beta2", spec.beta2)):
        param = getattr(space, name)
        if param is not None and (shared or target is not None):
            axes[f"{prefix}{name}"] = (name, param)
    for name, override in overrides.items():
        if isinstance(override, SEARCHED):
            axes[f"{optimizer}.{name}"] = (f"{optimizer}.{name}", override)
    own = "schedule" in space.overrides.get(optimizer, {})
    for name, setting in setting_axes(space, optimizer).items():
        if isinstance(setting, SEARCHED):
            # Shared by every family (a batch size is one), but a family's own schedule is
            # its own dimension.
            stored = f"{optimizer}.{name}" if own and name.startswith("schedule.") else name
            axes[stored] = (name, setting)
    return axes


def drawn_value(param: Param, drawn: Any) -> Any:
    """What a drawn value means: 1 - drawn for a log_one_minus range."""
    if isinstance(param, FloatRange) and param.log_one_minus:
        return 1 - drawn
    return drawn


def suggestion_from(space: Space, params: dict[str, Any], *, shared: bool) -> Suggestion:
    """The configuration that drawn ``params`` (``optimizer`` and each of its family's
    ``searched_axes``) stand for, with the space's fixed values."""
    optimizer = params["optimizer"]
    sampled: dict[str, Any] = {}
    for name, (target, param) in searched_axes(space, optimizer, shared=shared).items():
        sampled[target] = drawn_value(param, params[name])
    for name, override in space.family_overrides(optimizer).items():
        if not isinstance(override, SEARCHED):
            sampled[f"{optimizer}.{name}"] = override
    for name, setting in setting_axes(space, optimizer).items():
        if not isinstance(setting, SEARCHED):
            sampled[name] = setting
    return to_suggestion(space, optimizer, sampled)
