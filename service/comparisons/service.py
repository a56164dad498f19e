"""A comparison of several sweeps, read from the database: each sweep's target, each family's
time to it and tuning cost, and the families' performance profiles."""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass
from itertools import chain
from typing import Literal

from sqlalchemy import String, select, type_coerce
from sqlalchemy.orm import Session

from optisweep.optimizers.schemas import short_repr
from optisweep.service.accounts.access import Principal, check_sweep
from optisweep.service.comparisons.profiles import (
    TAUS,
    Curve,
    Mode,
    first_reach,
    fraction_target,
    profile,
    ratios,
    tuning_trials,
)
from optisweep.service.comparisons.schemas import (
    ComparedSweep,
    Comparison,
    FamilyResult,
    Measure,
    Profile,
)
from optisweep.service.db.base import ROWS_AT_A_TIME
from optisweep.service.errors import InputError
from optisweep.service.sweeps.models import Sweep
from optisweep.service.sweeps.repository import stored_spec
from optisweep.service.sweeps.search_spec import ObjectiveSpec
from optisweep.service.trials.models import RANKED, Metric, Trial
from optisweep.service.trials.tallies import sweep_versions
from optisweep.service.versioned_cache import VersionedCache
from optisweep.workers.workloads import TIME_METRIC

_DIRECTIONS: dict[str, Mode | None] = {">=": "max", "<=": "min", "=": None}
_TARGET = re.compile(r"^\s*([A-Za-z_][\w.\-/]*)\s*(>=|<=|=)\s*([^\s=<>]+)\s*$")


@dataclass(frozen=True)
class Target:
    """A target as asked: ``val_accuracy>=0.95``, ``val_loss<=0.1`` or ``val_accuracy=0.95``
    (the direction of the sweep's objective)."""

    metric: str
    direction: Mode | None
    value: float

    @classmethod
    def parse(cls, text: str) -> Target:
        """A target from its text; InputError naming ``target`` if it is not one."""
        found = _TARGET.match(text)
        value = _number(found.group(3)) if found else None
        if found is None or value is None:
            raise _bad(
                "target",
                f"not METRIC>=VALUE, METRIC<=VALUE or METRIC=VALUE: {short_repr(text)}",
            )
        return cls(found.group(1), _DIRECTIONS[found.group(2)], value)


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _bad(field: str, message: str) -> InputError:
    return InputError(f"{field}: {message}", loc=("query", field))


@dataclass
class _Loaded:
    """One sweep's part of a comparison, before the families are compared across sweeps."""

    column: ComparedSweep
    families: dict[str, list[Curve]]


def compare(
    session: Session,
    principal: Principal,
    *,
    sweep_ids: list[int],
    targets: list[Target],
    fraction: float,
    tolerance: float,
    measure: Literal["auto", "seconds", "epochs"],
) -> Comparison:
    """The comparison of these sweeps (cached until one changes, as ``VersionedCache``
    spaces a slow one); NotFoundError for a sweep the principal may not read, InputError
    naming the parameter for a target or measure the sweeps cannot answer."""
    sweeps = [check_sweep(session, principal, sid, action="read") for sid in sweep_ids]
    versions = sweep_versions(session, sweep_ids)
    key = (
        tuple((s.id, s.created_at) for s in sweeps),
        tuple(targets),
        fraction,
        tolerance,
        measure,
    )

    def computed() -> Comparison:
        loaded = [_load(session, sweep, targets, fraction) for sweep in sweeps]
        return _compare(loaded, measure, tolerance)

    return _CACHE.get(key, tuple(versions[s.id] for s in sweeps), computed)


_CACHE: VersionedCache[Comparison] = VersionedCache(64)
"""Comparisons by their sweeps and parameters, at the sweeps' versions
(``tallies.sweep_versions``)."""


def _compare(
    loaded: list[_Loaded], measure: Literal["auto", "seconds", "epochs"], tolerance: float
) -> Comparison:
    chosen = _measure(measure, loaded)
    results: list[FamilyResult] = []
    times: dict[str, dict[int, float | None]] = defaultdict(dict)
    for part in loaded:
        rows = _family_results(part, chosen, tolerance)
        for row in rows:
            times[row.optimizer][part.column.sweep_id] = row.ratio
        results.extend(sorted(rows, key=lambda r: (r.ratio is None, r.ratio or 0, r.optimizer)))
    profiles = []
    for family, by_sweep in times.items():
        shares, area = profile(
            [by_sweep.get(part.column.sweep_id) for part in loaded], sweeps=len(loaded)
        )
        profiles.append(Profile(optimizer=family, shares=shares, area=area))
    profiles.sort(key=lambda p: (-p.area, p.optimizer))
    return Comparison(
        sweeps=[part.column for part in loaded],
        measure=chosen,
        tolerance=tolerance,
        results=results,
        taus=TAUS,
        profiles=profiles,
        notes=_notes(loaded, chosen, measure, set(times)),
    )


def _load(session: Session, sweep: Sweep, targets: list[Target], fraction: float) -> _Loaded:
    spec = stored_spec(sweep)
    reported = set(
        session.scalars(
            select(Metric.name).join(Trial, Metric.trial_id == Trial.id)
            .where(Trial.sweep_id == sweep.id).distinct()
        )
    )  # fmt: skip
    workload = spec.workload.name or spec.workload.entrypoint or "?"
    metric, mode, given = _target_for(sweep, workload, spec.objective, reported, targets)
    # Plain Core rows, the status as its text and no metric's kind: a million trials' curves
    # are millions of rows, and converting each one's enums was a fifth of the time.
    connection = session.connection()
    ranked = {state.value for state in RANKED}
    trials = connection.execute(
        select(
            Trial.id,
            Trial.number,
            Trial.optimizer,
            Trial.pack_id,
            type_coerce(Trial.status, String),
        ).where(Trial.sweep_id == sweep.id)
    ).all()
    curves = {
        trial_id: Curve(number=number, optimizer=optimizer, ranked=status in ranked)
        for trial_id, number, optimizer, _, status in trials
    }
    metrics = Metric.__table__.c
    points = connection.execute(
        select(metrics.trial_id, metrics.name, metrics.step, metrics.value_finite)
        .join(Trial, metrics.trial_id == Trial.id)
        .where(Trial.sweep_id == sweep.id, metrics.name.in_([metric, TIME_METRIC]))
    )
    for trial_id, name, step, finite in chain.from_iterable(points.partitions(ROWS_AT_A_TIME)):
        # NaN for every value that is not finite: a comparison never tells NaN from inf (no
        # such value reaches a target, is a best, or a last epoch's summary).
        into = curves[trial_id].values if name == metric else curves[trial_id].seconds
        into[step] = math.nan if finite is None else finite
    if given is None:
        target, rule = fraction_target(list(curves.values()), mode, fraction)
    else:
        target, rule = given, f"given: {metric} {'>=' if mode == 'max' else '<='} {given:g}"
    families: dict[str, list[Curve]] = defaultdict(list)
    for curve in curves.values():
        families[curve.optimizer].append(curve)
    column = ComparedSweep(
        sweep_id=sweep.id,
        name=sweep.name,
        workload=workload,
        metric=metric,
        mode=mode,
        epoch=spec.objective.summary,
        target=target,
        target_rule=rule,
        timed=TIME_METRIC in reported,
        packed=any(pack_id is not None for _, _, _, pack_id, _ in trials),
    )
    return _Loaded(column, dict(families))


def _target_for(
    sweep: Sweep,
    workload: str,
    objective: ObjectiveSpec,
    reported: set[str],
    targets: list[Target],
) -> tuple[str, Mode, float | None]:
    """The metric, direction and given target value (None: by fraction) a sweep is measured on
    (on its primary objective unless a target names another metric it reports)."""
    metric, mode = objective.metric, objective.mode
    if not targets:
        return metric, mode, None
    for target in targets:
        if target.metric == metric:
            return metric, target.direction or mode, target.value
    for target in targets:
        if target.metric in reported:
            if target.direction is None:
                raise _bad(
                    "target",
                    f"{target.metric} is not sweep {sweep.id}'s objective ({metric}), so its "
                    f"direction is not known: write {target.metric}>=VALUE or "
                    f"{target.metric}<=VALUE",
                )
            return target.metric, target.direction, target.value
    asked = ", ".join(sorted({t.metric for t in targets}))
    has = ", ".join(sorted(reported)) or "nothing yet"
    raise _bad(
        "target",
        f"sweep {sweep.id} ({workload}) reports none of {asked}; it reports {has}",
    )


def _measure(asked: Literal["auto", "seconds", "epochs"], loaded: list[_Loaded]) -> Measure:
    untimed = [part.column.sweep_id for part in loaded if not part.column.timed]
    if asked == "epochs" or (asked == "auto" and untimed):
        return "epochs"
    if untimed:
        raise _bad(
            "measure",
            f"sweep {untimed[0]} recorded no {TIME_METRIC} (it ran before times were recorded): "
            "use measure=epochs",
        )
    return "seconds"


def _family_results(part: _Loaded, measure: Measure, tolerance: float) -> list[FamilyResult]:
    column = part.column
    rows: dict[str, FamilyResult] = {}
    fastest: dict[str, float | None] = {}
    target = column.target
    for family, curves in sorted(part.families.items()):
        reached = [
            (curve, hit)
            for curve in curves
            if target is not None and (hit := first_reach(curve, target, column.mode)) is not None
        ]
        epochs = min((hit[0] for _, hit in reached), default=None)
        seconds = min((hit[1] for _, hit in reached if hit[1] is not None), default=None)
        cost = (lambda item: item[1][0]) if measure == "epochs" else _seconds_of
        best_trial = min(reached, key=cost)[0].number if reached else None
        fastest[family] = (
            (float(epochs) if epochs is not None else None) if measure == "epochs" else seconds
        )
        bests = [b for c in curves if (b := c.summary(column.epoch, column.mode)) is not None]
        rows[family] = FamilyResult(
            sweep_id=column.sweep_id,
            optimizer=family,
            trials=len(curves),
            best_objective=(max(bests) if column.mode == "max" else min(bests)) if bests else None,
            reached=len(reached),
            epochs_to_target=epochs,
            seconds_to_target=seconds,
            fastest_trial=best_trial,
            ratio=None,
            tuning_trials=tuning_trials(curves, column.mode, tolerance),
        )
    for family, ratio in ratios(fastest).items():
        rows[family].ratio = ratio
    return list(rows.values())


def _seconds_of(item: tuple[Curve, tuple[int, float | None]]) -> float:
    seconds = item[1][1]
    return math.inf if seconds is None else seconds


def _notes(loaded: list[_Loaded], measure: Measure, asked: str, families: set[str]) -> list[str]:
    notes = []
    if measure == "seconds" and any(part.column.packed for part in loaded):
        notes.append(
            f"{TIME_METRIC} of a trial that trained in a pack is its share of the pack's time "
            "(each pack epoch's seconds divided among the members that trained in it)"
        )
    if measure == "epochs" and asked == "auto":
        untimed = ", ".join(str(p.column.sweep_id) for p in loaded if not p.column.timed)
        notes.append(f"sweeps {untimed} recorded no {TIME_METRIC}: fastest is by epochs")
    for part in loaded:
        missing = sorted(families - set(part.families))
        if missing:
            notes.append(
                f"{', '.join(missing)} did not run on sweep {part.column.sweep_id}: "
                "counted there as not reaching its target"
            )
    return notes
