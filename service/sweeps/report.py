"""The optimizer report: per family, its best configuration, the learning-rate basin around it
(the contiguous lr interval whose configurations reach within a tolerance of that best), how
wide the basin is in decades (a robust family has a wide one), where the family diverged, and
one sentence a person can act on; with ``search.defaults_first``, how far tuning moved each
family beyond its published defaults."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from optisweep.optimizers import get_spec
from optisweep.service.db.base import ROWS_AT_A_TIME
from optisweep.service.sweeps.basin import Configurations, best_and_basin, configurations
from optisweep.service.sweeps.family_report import (
    FamilyReport,
    basin_sentence,
    defaults_text,
    lr_free_sentence,
    tuning_gains,
)
from optisweep.service.sweeps.group_space import group_axes
from optisweep.service.sweeps.models import Sweep
from optisweep.service.sweeps.params import FloatRange, IntRange
from optisweep.service.sweeps.repository import stored_spec
from optisweep.service.sweeps.scale import ScaleStudyRead, SizeBest, scale_study
from optisweep.service.sweeps.scale_spec import ScaleSpec
from optisweep.service.sweeps.schedule_space import SCHEDULE_FIELDS
from optisweep.service.sweeps.schemas import Space, SweepCreate
from optisweep.service.sweeps.verdict import verdict
from optisweep.service.sweeps.views import leaderboard_read
from optisweep.service.sweeps.warm_start import WarmStartRead, warm_start_read
from optisweep.service.trials.models import TRIAL_LR, Trial, TrialState
from optisweep.service.trials.ranking import ranked_trials
from optisweep.service.trials.tallies import sweep_versions
from optisweep.service.versioned_cache import VersionedCache

DEFAULT_TOLERANCE = 0.02
"""Within 2% of a family's best objective (relative) counts as "as good"."""


class OptimizerReport(BaseModel):
    """The report of one sweep: its verdict, then every family in the leaderboard's order."""

    sweep_id: int
    metric: str
    mode: str
    epoch: Literal["last", "best"] = "last"
    """Which epoch's value a trial's objective is here: the sweep's ``objective.summary``."""
    tolerance: float
    """Relative: within ``tolerance`` x |best| of a family's best objective."""
    verdict: str = ""
    """Which family to pick, why and how sure, in one or two sentences (from the leaderboard,
    its ties, the families' lr basins and divergence)."""
    families: list[FamilyReport]
    warm_start: WarmStartRead | None = None
    """What the sweep learnt from earlier sweeps (``search.warm_start``); null without one."""
    scale_study: ScaleStudyRead | None = None
    """A scale study's best lr per size and family, its rule and prediction (``scale``)."""


def _listed_names(
    space: Space, optimizer: str, sizes: str | None = None
) -> tuple[set[str], set[str]]:
    """The settings that split a family's basin: those the space fixes or lists as values (a
    batch size of {values}, a schedule kind, a scale study's size: setting ``sizes``), not those
    drawn from a range (a warm-up of 0..500 steps would leave one configuration per slice); at
    the top of a trial's settings, and inside its schedule."""

    def listed(value: object) -> bool:  # None: the sweep does not search it
        return value is not None and not isinstance(value, FloatRange | IntRange)

    top = {name for name in ("batch_size", "clip_norm") if listed(getattr(space, name))}
    top |= {name for name, value in group_axes(space.param_groups).items() if listed(value)}
    if sizes is not None:
        top.add(sizes)
    schedule = space.schedule_for(optimizer)
    inner = (
        {n for n in SCHEDULE_FIELDS if listed(getattr(schedule, n))}
        if schedule is not None
        else set()
    )
    return top, inner


def _listed(
    space: Space, optimizer: str, sizes: str | None = None
) -> Callable[[dict[str, Any]], str]:
    """A trial's settings as the key of its group (``_listed_names``)."""
    top, inner = _listed_names(space, optimizer, sizes)

    def key(settings: dict[str, Any]) -> str:
        kept: dict[str, Any] = {k: v for k, v in settings.items() if k in top}
        if isinstance(settings.get("schedule"), dict):
            kept["schedule"] = {k: v for k, v in settings["schedule"].items() if k in inner}
        return json.dumps(kept, sort_keys=True)

    return key


def optimizer_report(
    session: Session, sweep: Sweep, *, tolerance: float = DEFAULT_TOLERANCE
) -> OptimizerReport:
    """The optimizer report of ``sweep`` from its trials so far (cached until a trial's
    status changes or a trial reports an epoch, as ``VersionedCache`` spaces a slow one: the
    sweep page asks for it on every refresh)."""
    version = sweep_versions(session, [sweep.id])[sweep.id]
    return _CACHE.get(
        (sweep.id, sweep.created_at, tolerance),
        version,
        lambda: _report(session, sweep, tolerance=tolerance),
    )


_CACHE: VersionedCache[OptimizerReport] = VersionedCache(256)


@dataclass(frozen=True)
class _Default:
    """A family's configuration at its published defaults (``search.defaults_first``)."""

    number: int
    lr: float
    value: float

    @classmethod
    def first(cls, found: Configurations) -> _Default | None:
        """The first of ``found`` flagged as the defaults, or None."""
        flagged = np.flatnonzero(found.defaults)
        if not flagged.size:
            return None
        at = int(flagged[0])
        return cls(int(found.numbers[at]), float(found.lrs[at]), float(found.values[at]))


def _report(session: Session, sweep: Sweep, *, tolerance: float) -> OptimizerReport:
    spec = stored_spec(sweep)
    maximize = spec.objective.mode == "max"
    diverged = _diverged(session, sweep.id)
    families = []
    bests: dict[str, list[SizeBest]] = {}
    for name in spec.space.optimizers:
        found = _configurations(session, sweep.id, spec, name)
        searched = found.take(~found.defaults)
        families.append(
            _family(
                name,
                searched,
                diverged.get(name, (0, None)),
                maximize,
                tolerance,
                spec.objective.metric,
                default=_Default.first(found),
                details=lambda number: _details(session, sweep.id, number),
            )
        )
        if spec.scale is not None and not get_spec(name).learning_rate_free:
            bests[name] = _size_bests(spec.scale, searched, maximize, tolerance)
    families.sort(
        key=lambda f: (
            f.best_objective is None,
            -(f.best_objective or 0.0) if maximize else (f.best_objective or 0.0),
        )
    )
    _compare_lr_free(families, spec.objective.metric, maximize=maximize)
    board = leaderboard_read(session, sweep, checkpoint_dir=".")
    rank = {entry.optimizer: entry.rank for entry in board.entries}
    families.sort(key=lambda f: rank.get(f.optimizer, len(rank) + 1))  # the leaderboard's order
    return OptimizerReport(
        sweep_id=sweep.id,
        metric=spec.objective.metric,
        mode=spec.objective.mode,
        epoch=spec.objective.summary,
        tolerance=tolerance,
        verdict=verdict(board, families, tolerance=tolerance),
        families=families,
        warm_start=warm_start_read(session, sweep, spec),
        scale_study=scale_study(spec, bests),
    )


def _diverged(session: Session, sweep_id: int) -> dict[str, tuple[int, float | None]]:
    """Per family: how many of its trials diverged, and the lowest lr one diverged at."""
    rows = session.execute(
        select(Trial.optimizer, func.count(), func.min(TRIAL_LR))
        .where(Trial.sweep_id == sweep_id, Trial.status == TrialState.DIVERGED)
        .group_by(Trial.optimizer)
    )
    return {name: (count, lowest) for name, count, lowest in rows}


def _configurations(
    session: Session, sweep_id: int, spec: SweepCreate, name: str
) -> Configurations:
    """A family's configurations with a finite objective, read as columns (the settings only
    where the sweep lists some: they group the basins)."""
    setting = spec.scale.setting if spec.scale is not None else None
    top, inner = _listed_names(spec.space, name, setting)
    columns: list[Any] = [Trial.number, TRIAL_LR, Trial.objective_value, Trial.defaults]
    if top or inner:
        columns.append(Trial.settings)
    maximize = spec.objective.mode == "max"
    query = (
        ranked_trials(sweep_id, maximize=maximize)
        .with_only_columns(*columns)
        .where(Trial.optimizer == name)
        .order_by(None)  # any order: the columns are sorted by number below
    )
    parts: list[list[Any]] = [[] for _ in columns]
    for chunk in session.execute(query).partitions(ROWS_AT_A_TIME):
        for part, column in zip(parts, zip(*chunk, strict=True), strict=True):
            part.extend(column)
    numbers, lrs, values, defaults = (
        np.array(parts[0], dtype=np.int64),
        np.array(parts[1], dtype=np.float64),  # a missing lr (None) is NaN
        np.array(parts[2], dtype=np.float64),
        np.array(parts[3], dtype=np.bool_),
    )
    groups, sizes = np.zeros(len(numbers), dtype=np.int64), None  # one group: nothing listed
    if top or inner:
        settings = [s or {} for s in parts[4]]
        key, ids = _listed(spec.space, name, setting), dict[str, int]()
        groups = np.array([ids.setdefault(key(s), len(ids)) for s in settings], dtype=np.int64)
        sizes = [s.get(setting) for s in settings] if setting is not None else None
    return configurations(
        numbers, lrs, values, groups, defaults, repeats=spec.search.repeats, sizes=sizes
    )


def _details(
    session: Session, sweep_id: int, number: int
) -> tuple[dict[str, object], dict[str, object]]:
    """A trial's hyperparameters and settings, by its number."""
    hyperparameters, settings = session.execute(
        select(Trial.hyperparameters, Trial.settings).where(
            Trial.sweep_id == sweep_id, Trial.number == number
        )
    ).one()
    return dict(hyperparameters), dict(settings or {})


def _size_bests(
    scale: ScaleSpec, searched: Configurations, maximize: bool, tolerance: float
) -> list[SizeBest]:
    """A family's best lr and basin at each size of a scale study it has a result at."""
    assert searched.sizes is not None
    found = []
    for size in scale.sizes():
        at = searched.take(np.array([s == size for s in searched.sizes], dtype=np.bool_))
        if len(at):
            basin = best_and_basin(at, maximize=maximize, tolerance=tolerance)
            found.append(SizeBest(size, float(at.lrs[basin.best]), basin.low, basin.high))
    return found


def _compare_lr_free(families: list[FamilyReport], metric: str, *, maximize: bool) -> None:
    """Each learning-rate-free family's report says what tuning lr gained over it: the best
    family with a tuned lr against its best (``families`` best first)."""
    tuned = next(
        (
            f
            for f in families
            if f.best_objective is not None and not get_spec(f.optimizer).learning_rate_free
        ),
        None,
    )
    for family in families:
        if tuned is None or family.best_objective is None:
            continue
        if not get_spec(family.optimizer).learning_rate_free:
            continue
        gap = tuned.best_objective - family.best_objective  # type: ignore[operator]
        gain = gap if maximize else -gap
        share = f" ({gain / abs(family.best_objective):+.1%})" if family.best_objective else ""
        family.lr_tuning_gain = gain
        family.summary += (
            f"; tuning lr gained {gain:+.3g} {metric}{share} over it "
            f"(the best family with a tuned lr, {tuned.optimizer}: {tuned.best_objective:.4g})"
        )


def _unfinished_family(
    name: str, diverged: int, lowest_diverged: float | None, metric: str, defaults: dict[str, Any]
) -> FamilyReport:
    """A family none of whose configurations finished with a finite objective."""
    report = FamilyReport(
        optimizer=name,
        best_trial=None,
        best_objective=None,
        best_lr=None,
        best_hyperparameters=None,
        best_settings=None,
        basin_low=None,
        basin_high=None,
        basin_decades=None,
        basin_configurations=0,
        open_below=False,
        open_above=False,
        configurations=0,
        diverged=diverged,
        lowest_diverged_lr=lowest_diverged,
        summary=f"{name}: no configuration finished with a finite {metric} ({diverged} diverged)",
        **defaults,
    )
    report.summary += defaults_text(report, metric)
    return report


def _family(
    name: str,
    searched: Configurations,
    diverged: tuple[int, float | None],
    maximize: bool,
    tolerance: float,
    metric: str,
    *,
    default: _Default | None,
    details: Callable[[int], tuple[dict[str, object], dict[str, object]]],
) -> FamilyReport:
    count, lowest_diverged = diverged
    defaults = {
        "default_trial": default.number if default else None,
        "default_objective": default.value if default else None,
        "default_lr": default.lr if default else None,
    }
    if not len(searched):
        return _unfinished_family(name, count, lowest_diverged, metric, defaults)
    basin = best_and_basin(searched, maximize=maximize, tolerance=tolerance)
    best_value = float(searched.values[basin.best])
    hyperparameters, settings = details(int(searched.numbers[basin.best]))
    report = FamilyReport(
        optimizer=name,
        best_trial=int(searched.numbers[basin.best]),
        best_objective=best_value,
        best_lr=float(searched.lrs[basin.best]),
        best_hyperparameters=hyperparameters,
        best_settings=settings or None,
        basin_low=basin.low,
        basin_high=basin.high,
        basin_decades=basin.decades,
        basin_configurations=basin.count,
        open_below=basin.open_below,
        open_above=basin.open_above,
        configurations=len(searched),
        diverged=count,
        lowest_diverged_lr=lowest_diverged,
        summary="",
        **defaults,
        **tuning_gains(best_value, default.value if default else None, maximize=maximize),
    )
    if get_spec(name).learning_rate_free:
        report.summary = lr_free_sentence(report, metric)
    else:
        highest = basin.highest_tried
        report.summary = basin_sentence(report, tolerance, metric, highest_tried=highest)
    report.summary += defaults_text(report, metric)
    return report
