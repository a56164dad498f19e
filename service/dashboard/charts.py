"""The sweep page's charts: learning curves, lr sensitivity, best so far, parallel coordinates,
and the Pareto front of a multi-objective sweep."""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter

from optisweep.service.dashboard import queries
from optisweep.service.dashboard.downsample import lttb
from optisweep.service.dashboard.schemas import (
    ChartJSON,
    Curve,
    Curves,
    FamilyPoints,
    Limit,
    MaxPoints,
    ObjectivePoints,
    Parallel,
    ParallelRow,
    PointsPerFamily,
    Series,
)
from optisweep.service.deps import SessionDep
from optisweep.service.routing import NOT_FOUND, StrictRoute
from optisweep.service.sweeps.params import Choice, IntRange
from optisweep.service.sweeps.repository import get_sweep, stored_spec
from optisweep.service.sweeps.views import front_of
from optisweep.service.trials.queue import count_trials
from optisweep.service.trials.ranking import ranked_trials
from optisweep.service.trials.repository import objective_points

router = APIRouter(prefix="/sweeps", tags=["dashboard"], route_class=StrictRoute)


@router.get(
    "/{sweep_id}/curves", response_model=Curves, response_class=ChartJSON, responses=NOT_FOUND
)
def curves(
    sweep_id: int,
    session: SessionDep,
    metric: str | None = None,
    max_points: MaxPoints = 200,
    limit: Limit = 200,
) -> ChartJSON:
    """The curves of the ``limit`` best trials and of each family's best, LTTB-downsampled."""
    sweep = get_sweep(session, sweep_id)
    objective, maximize = queries.objective(sweep)
    metric = metric or objective
    bests = queries.family_bests(session, sweep, maximize=maximize)
    by_id = queries.best_trials(session, sweep, maximize=maximize, limit=limit, also=bests)
    best_ids = {trial.id for trial in bests}
    points = queries.curve_points(session, by_id, metric)
    result = []
    for trial_id, trial in by_id.items():
        steps, values = lttb(
            [p[0] for p in points[trial_id]], [p[1] for p in points[trial_id]], max_points
        )
        result.append(
            Curve(
                trial_id=trial_id,
                number=trial.number,
                optimizer=trial.optimizer,
                status=trial.status,
                best_in_family=trial_id in best_ids,
                steps=steps,
                values=[v if math.isfinite(v) else None for v in values],
            )
        )
    total = count_trials(session, sweep_id=sweep_id)
    return ChartJSON(Curves(metric=metric, total_trials=total, curves=result))


@router.get(
    "/{sweep_id}/lr-sensitivity",
    response_model=Series,
    response_class=ChartJSON,
    responses=NOT_FOUND,
)
def lr_sensitivity(
    sweep_id: int, session: SessionDep, max_points: PointsPerFamily = 2000
) -> ChartJSON:
    """Final objective against lr, one series per family (completed and stopped trials), or
    per family and batch size and schedule kind when the sweep searches them; a series with
    more than ``max_points`` trials shows a random sample of them."""
    sweep = get_sweep(session, sweep_id)
    metric, maximize = queries.objective(sweep)
    rows = queries.lr_rows(session, sweep, maximize=maximize, max_points=max_points)
    space = stored_spec(sweep).space
    by_batch = isinstance(space.batch_size, Choice | IntRange)
    kinds = {
        kind
        for schedule in space.schedules().values()
        for kind in (schedule.kind.values if isinstance(schedule.kind, Choice) else [schedule.kind])
    }
    by_kind = len(kinds) > 1

    def series(optimizer: str, settings: dict[str, Any] | None) -> str:
        size = (settings or {}).get("batch_size")
        kind = ((settings or {}).get("schedule") or {}).get("kind")
        parts = [optimizer]
        if by_batch and size is not None:
            parts.append(f"batch {size}")
        if by_kind and kind is not None:
            parts.append(kind)
        return ", ".join(parts)

    families = queries.by_family((series(row[0], row[4]), row[1], row[2], row[3]) for row in rows)
    thinned = [queries.thin(f, max_points, sweep_id) for f in families.values()]
    return ChartJSON(Series(metric=metric, mode="max" if maximize else "min", families=thinned))


@router.get(
    "/{sweep_id}/best-so-far", response_model=Series, response_class=ChartJSON, responses=NOT_FOUND
)
def best_so_far(
    sweep_id: int, session: SessionDep, max_points: PointsPerFamily = 2000
) -> ChartJSON:
    """Per family: the best objective so far against the epochs its trials have spent, in the
    order they were reported (the points where it improved, then on to all it spent; at most
    ``max_points``, LTTB-downsampled). The controller keeps these as reports arrive, so this
    reads a few rows whatever the sweep's size."""
    sweep = get_sweep(session, sweep_id)
    metric, maximize = queries.objective(sweep)
    shown = []
    for family in queries.improvements(session, sweep_id).values():
        if len(family.x) > max_points:
            trial_of = dict(zip(family.x, family.trial_ids, strict=False))
            xs, ys = lttb(family.x, family.y, max_points)
            family = FamilyPoints(
                optimizer=family.optimizer, x=xs, y=ys, trial_ids=[trial_of[x] for x in xs]
            )
        shown.append(family)
    return ChartJSON(Series(metric=metric, mode="max" if maximize else "min", families=shown))


@router.get(
    "/{sweep_id}/objectives",
    response_model=ObjectivePoints,
    response_class=ChartJSON,
    responses=NOT_FOUND,
)
def objectives(sweep_id: int, session: SessionDep, max_points: PointsPerFamily = 2000) -> ChartJSON:
    """Ranked trials on the first two objectives, per family (a family with more than
    ``max_points`` shows a random sample), and the whole Pareto front over all objectives."""
    sweep = get_sweep(session, sweep_id)
    spec = stored_spec(sweep)
    empty = FamilyPoints(optimizer="pareto front", x=[], y=[], trial_ids=[])
    if not spec.objective.also:
        return ChartJSON(ObjectivePoints(objectives=[], modes=[], families=[], front=empty))
    others = [objective.metric for objective in spec.objective.also]
    points = objective_points(session, sweep_id=sweep_id, others=others)
    families = queries.by_family(
        (p.optimizer, p.values[0], p.values[1], p.trial_id) for p in points
    )
    front = front_of(session, sweep_id, spec)
    return ChartJSON(
        ObjectivePoints(
            objectives=[o.metric for o in spec.objective.objectives],
            modes=[o.mode for o in spec.objective.objectives],
            families=[queries.thin(f, max_points, sweep_id) for f in families.values()],
            front=FamilyPoints(
                optimizer="pareto front",
                x=[p.values[0] for p in front],
                y=[p.values[1] for p in front],
                trial_ids=[p.trial_id for p in front],
            ),
        )
    )


@router.get(
    "/{sweep_id}/parallel", response_model=Parallel, response_class=ChartJSON, responses=NOT_FOUND
)
def parallel(sweep_id: int, session: SessionDep, limit: Limit = 1000) -> ChartJSON:
    """The ``limit`` best trials as (family, lr, beta1, beta2, objective) rows."""
    sweep = get_sweep(session, sweep_id)
    metric, maximize = queries.objective(sweep)
    rows = []
    for trial in session.scalars(ranked_trials(sweep_id, maximize=maximize).limit(limit)):
        beta1, beta2 = queries.betas(trial.optimizer, trial.hyperparameters)
        schedule = (trial.settings or {}).get("schedule") or {}
        rows.append(
            ParallelRow(
                trial_id=trial.id,
                optimizer=trial.optimizer,
                lr=float(trial.hyperparameters["lr"]),
                beta1=beta1,
                beta2=beta2,
                batch_size=(trial.settings or {}).get("batch_size"),
                clip_norm=(trial.settings or {}).get("clip_norm"),
                schedule=schedule.get("kind"),
                warmup_steps=schedule.get("warmup_steps"),
                objective=float(trial.objective_value or 0.0),
            )
        )
    space = stored_spec(sweep).space
    schedules = space.schedules().values()
    settings = [name for name in ("batch_size", "clip_norm") if getattr(space, name) is not None]
    if schedules:
        settings.append("schedule")
    if any(isinstance(s.warmup_steps, Choice | IntRange) for s in schedules):
        settings.append("warmup_steps")
    return ChartJSON(Parallel(metric=metric, rows=rows, settings=settings))
