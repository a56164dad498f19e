"""The optimizer report: per family, its best configuration, the learning-rate basin around it
(the contiguous lr interval whose configurations reach within a tolerance of that best), how
wide the basin is in decades (a robust family has a wide one), where the family diverged, and
one sentence a person can act on; with ``search.defaults_first``, how far tuning moved each
family beyond its published defaults."""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from optisweep.optimizers import get_spec
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
from optisweep.service.sweeps.schemas import Space
from optisweep.service.sweeps.verdict import verdict
from optisweep.service.sweeps.views import leaderboard_read
from optisweep.service.sweeps.warm_start import WarmStartRead, warm_start_read
from optisweep.service.trials.models import Trial, TrialState
from optisweep.service.trials.repository import RANKED
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


@dataclass
class _Configuration:
    number: int
    lr: float
    value: float
    hyperparameters: dict[str, object]
    settings: dict[str, object]
    group: str = ""
    """Its settings that the sweep lists (not ranges): the basin is a slice of one group."""
    defaults: bool = False
    """The family at its published defaults (the defaults-first stage)."""


def _listed(
    space: Space, optimizer: str, sizes: str | None = None
) -> Callable[[dict[str, Any]], str]:
    """A trial's settings as the key of its group: those the space fixes or lists as values
    (a batch size of {values}, a schedule kind, a scale study's size: setting ``sizes``), not
    those drawn from a range (a warm-up of 0..500 steps would leave one configuration per
    slice)."""

    def listed(value: object) -> bool:
        return not isinstance(value, FloatRange | IntRange)

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


def _report(session: Session, sweep: Sweep, *, tolerance: float) -> OptimizerReport:
    spec = stored_spec(sweep)
    maximize = spec.objective.mode == "max"
    repeats = spec.search.repeats
    trials = session.execute(  # the columns it reads, of the trials that count
        select(
            Trial.optimizer,
            Trial.number,
            Trial.status,
            Trial.hyperparameters,
            Trial.settings,
            Trial.defaults,
            Trial.objective_value,
        ).where(Trial.sweep_id == sweep.id, Trial.status.in_([TrialState.DIVERGED, *RANKED]))
    ).all()
    finite: dict[str, dict[int, list[Any]]] = defaultdict(lambda: defaultdict(list))
    diverged: dict[str, list[float]] = defaultdict(list)
    for trial in trials:
        lr = float(trial.hyperparameters.get("lr", math.nan))
        if trial.status == TrialState.DIVERGED:
            diverged[trial.optimizer].append(lr)
        elif math.isfinite(trial.objective_value or math.nan):
            finite[trial.optimizer][trial.number // repeats].append(trial)
    families = []
    bests: dict[str, list[SizeBest]] = {}
    setting = spec.scale.setting if spec.scale is not None else None
    for name in spec.space.optimizers:
        group = _listed(spec.space, name, setting)
        configurations = [
            _Configuration(
                number=members[0].number,
                lr=float(members[0].hyperparameters.get("lr", math.nan)),
                value=statistics.fmean(float(t.objective_value or 0.0) for t in members),
                hyperparameters=dict(members[0].hyperparameters),
                settings=dict(members[0].settings or {}),
                group=group(members[0].settings or {}),
                defaults=members[0].defaults,
            )
            for members in finite[name].values()
        ]
        families.append(
            _family(
                name,
                [c for c in configurations if not c.defaults],
                diverged[name],
                maximize,
                tolerance,
                spec.objective.metric,
                default=next((c for c in configurations if c.defaults), None),
            )
        )
        if spec.scale is not None and not get_spec(name).learning_rate_free:
            searched = [c for c in configurations if not c.defaults]
            bests[name] = _size_bests(name, spec.scale, searched, maximize, tolerance)
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


def _size_bests(
    name: str,
    scale: ScaleSpec,
    configurations: list[_Configuration],
    maximize: bool,
    tolerance: float,
) -> list[SizeBest]:
    """A family's best lr and basin at each size of a scale study it has a result at."""
    found = []
    for size in scale.sizes():
        at = [c for c in configurations if c.settings.get(scale.setting) == size]
        if at:
            report = _family(name, at, [], maximize, tolerance, "")
            assert report.best_lr is not None
            found.append(SizeBest(size, report.best_lr, report.basin_low, report.basin_high))
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
    name: str, diverged_lrs: list[float], metric: str, defaults: dict[str, Any]
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
        diverged=len(diverged_lrs),
        lowest_diverged_lr=min(diverged_lrs, default=None),
        summary=f"{name}: no configuration finished with a finite {metric} "
        f"({len(diverged_lrs)} diverged)",
        **defaults,
    )
    report.summary += defaults_text(report, metric)
    return report


def _basin(
    configurations: list[_Configuration], best: _Configuration, near: Callable[[Any], bool]
) -> tuple[list[_Configuration], int, int]:
    """The best configuration's basin, a slice along lr: the configurations that share its
    listed settings (batch size, clipping, schedule kind) sorted by lr, and the first and last
    index of the unbroken run around it within the tolerance."""
    alike = [c for c in configurations if c.group == best.group]
    by_lr = sorted(alike, key=lambda c: (c.lr, c.number))
    at = by_lr.index(best)
    low = high = at
    while low > 0 and near(by_lr[low - 1]):
        low -= 1
    while high < len(by_lr) - 1 and near(by_lr[high + 1]):
        high += 1
    return by_lr, low, high


def _family(
    name: str,
    configurations: list[_Configuration],
    diverged_lrs: list[float],
    maximize: bool,
    tolerance: float,
    metric: str,
    *,
    default: _Configuration | None = None,
) -> FamilyReport:
    defaults = {
        "default_trial": default.number if default else None,
        "default_objective": default.value if default else None,
        "default_lr": default.lr if default else None,
    }
    if not configurations:
        return _unfinished_family(name, diverged_lrs, metric, defaults)
    best = (max if maximize else min)(configurations, key=lambda c: c.value)
    margin = tolerance * max(abs(best.value), 1e-12)

    def near(configuration: _Configuration) -> bool:
        gap = best.value - configuration.value if maximize else configuration.value - best.value
        return gap <= margin

    by_lr, low, high = _basin(configurations, best, near)
    basin_low, basin_high = by_lr[low].lr, by_lr[high].lr
    decades = math.log10(basin_high / basin_low) if basin_low > 0 else None
    report = FamilyReport(
        optimizer=name,
        best_trial=best.number,
        best_objective=best.value,
        best_lr=best.lr,
        best_hyperparameters=best.hyperparameters,
        best_settings=best.settings or None,
        basin_low=basin_low,
        basin_high=basin_high,
        basin_decades=decades,
        basin_configurations=high - low + 1,
        open_below=low == 0,
        open_above=high == len(by_lr) - 1,
        configurations=len(configurations),
        diverged=len(diverged_lrs),
        lowest_diverged_lr=min(diverged_lrs, default=None),
        summary="",
        **defaults,
        **tuning_gains(best.value, default.value if default else None, maximize=maximize),
    )
    if get_spec(name).learning_rate_free:
        report.summary = lr_free_sentence(report, metric)
    else:
        report.summary = basin_sentence(report, tolerance, metric, highest_tried=by_lr[-1].lr)
    report.summary += defaults_text(report, metric)
    return report
