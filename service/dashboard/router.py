"""Query endpoints for dashboards: downsampled curves, lr sensitivity, best so far, parallel
coordinates, hyperparameter importance and CSV export. The web dashboard uses exactly these,
and so can any external one (Grafana, a notebook)."""

from __future__ import annotations

import csv
import io
import json
import math
import random
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel
from sqlalchemy import String, func, select, type_coerce

from optimizers import get_spec
from optimizers.schemas import short_repr
from service.dashboard.downsample import lttb
from service.db.base import decode_float
from service.deps import SessionDep
from service.errors import InputError
from service.routing import NOT_FOUND, StrictRoute
from service.sweeps.models import Sweep
from service.sweeps.repository import get_sweep
from service.trials.models import FamilyImprovement, FamilyTally, Metric, Trial, TrialStatus
from service.trials.repository import ranked_trials

router = APIRouter(prefix="/sweeps", tags=["dashboard"], route_class=StrictRoute)


class ChartJSON(JSONResponse):
    """A chart's model written by pydantic-core in one pass: FastAPI would validate and encode it
    again, which costs ~10x as much for the tens of thousands of numbers a chart carries. (A
    JSONResponse, so that the OpenAPI schema shows the chart's model.)"""

    def render(self, content: Any) -> bytes:
        """The model as JSON bytes."""
        assert isinstance(content, BaseModel)
        return content.model_dump_json().encode()


MaxPoints = Annotated[int, Query(ge=3, le=10_000, description="Points per curve at most.")]
Limit = Annotated[int, Query(ge=1, le=10_000, description="Trials at most, best first.")]


class Curve(BaseModel):
    """One trial's curve of one metric, downsampled."""

    trial_id: int
    number: int
    optimizer: str
    status: TrialStatus
    best_in_family: bool
    steps: list[float]
    values: list[float | None]


class Curves(BaseModel):
    """Learning curves of a sweep's best trials (plus every family's best)."""

    metric: str
    total_trials: int
    curves: list[Curve]


class FamilyPoints(BaseModel):
    """One family's points of a scatter or line chart."""

    optimizer: str
    x: list[float]
    y: list[float]
    trial_ids: list[int]


class Series(BaseModel):
    """Per family, points for one chart."""

    metric: str
    mode: str
    families: list[FamilyPoints]


class ParallelRow(BaseModel):
    """One trial in parallel coordinates (betas are None for families without them)."""

    trial_id: int
    optimizer: str
    lr: float
    beta1: float | None
    beta2: float | None
    objective: float


class Parallel(BaseModel):
    """The best trials as rows for parallel coordinates."""

    metric: str
    rows: list[ParallelRow]


class Importance(BaseModel):
    """How much each hyperparameter matters to the objective (Optuna's importance evaluators)."""

    metric: str
    method: str
    optimizer: str | None = None
    """The family the estimate is within (None: across families)."""
    trials: int
    """How many finished trials the estimate used."""
    importances: dict[str, float]


def _objective(sweep: Sweep) -> tuple[str, bool]:
    objective = sweep.spec["objective"]
    return objective["metric"], objective["mode"] == "max"


def _by_family(rows: Iterable[tuple[str, float, float, int]]) -> dict[str, FamilyPoints]:
    """(family, x, y, trial id) rows as one series of points per family, in row order."""
    families: dict[str, FamilyPoints] = {}
    for optimizer, x, y, trial_id in rows:
        family = families.setdefault(
            optimizer, FamilyPoints(optimizer=optimizer, x=[], y=[], trial_ids=[])
        )
        family.x.append(float(x))
        family.y.append(float(y))
        family.trial_ids.append(trial_id)
    return families


def _betas(optimizer: str, hyperparameters: dict[str, Any]) -> tuple[float | None, float | None]:
    """The generic beta1 and beta2 of a family's hyperparameters (None where it has none)."""
    spec = get_spec(optimizer)
    found: list[float | None] = []
    for target in (spec.beta1, spec.beta2):
        if target is None or target.field not in hyperparameters:
            found.append(None)
            continue
        value = hyperparameters[target.field]
        found.append(float(value if target.index is None else value[target.index]))
    return found[0], found[1]


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
    objective, maximize = _objective(sweep)
    metric = metric or objective
    best_value = Trial.best_objective_value
    order = best_value.desc() if maximize else best_value.asc()  # the index's order
    chosen = list(
        session.scalars(
            select(Trial)
            .where(Trial.sweep_id == sweep_id, best_value.is_not(None))
            .order_by(order)
            .limit(limit)
        )
    )
    best_of_family: dict[str, Trial] = {}
    for family in sweep.spec["space"]["optimizers"]:  # one indexed query per family
        best = session.scalars(
            ranked_trials(sweep_id, maximize=maximize).where(Trial.optimizer == family).limit(1)
        ).first()
        if best is not None:
            best_of_family[family] = best
    by_id = {trial.id: trial for trial in chosen}
    by_id.update({trial.id: trial for trial in best_of_family.values()})
    points: dict[int, list[tuple[int, float]]] = defaultdict(list)
    # Plain Core rows (no ORM entities, no enum conversion): tens of thousands of points.
    table = Metric.__table__.c
    rows = session.connection().execute(
        select(
            table.trial_id, table.step, table.value_finite, type_coerce(table.value_kind, String)
        )
        .where(table.trial_id.in_(list(by_id)), table.name == metric)
        .order_by(table.trial_id, table.step)
    )
    nonfinite = {"nan": math.nan, "inf_pos": math.inf, "inf_neg": -math.inf}
    for trial_id, step, value, kind in rows.all():
        if kind == "finite" and value is not None:
            points[trial_id].append((step, float(value)))
        else:
            points[trial_id].append((step, nonfinite.get(kind, math.nan)))
    best_ids = {trial.id for trial in best_of_family.values()}
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
    total = session.scalar(select(func.count()).where(Trial.sweep_id == sweep_id)) or 0
    return ChartJSON(Curves(metric=metric, total_trials=total, curves=result))


def _thin(family: FamilyPoints, max_points: int, seed: int) -> FamilyPoints:
    """At most ``max_points`` of a family's points, drawn at random (seeded), order kept."""
    if len(family.x) <= max_points:
        return family
    keep = sorted(random.Random(seed).sample(range(len(family.x)), max_points))
    return FamilyPoints(
        optimizer=family.optimizer,
        x=[family.x[i] for i in keep],
        y=[family.y[i] for i in keep],
        trial_ids=[family.trial_ids[i] for i in keep],
    )


PointsPerFamily = Annotated[
    int, Query(ge=3, le=100_000, description="Points per family at most (downsampled).")
]


@router.get(
    "/{sweep_id}/lr-sensitivity",
    response_model=Series,
    response_class=ChartJSON,
    responses=NOT_FOUND,
)
def lr_sensitivity(
    sweep_id: int, session: SessionDep, max_points: PointsPerFamily = 2000
) -> ChartJSON:
    """Final objective against lr, one series per family (completed and stopped trials); a
    family with more than ``max_points`` trials shows a random sample of them."""
    sweep = get_sweep(session, sweep_id)
    metric, maximize = _objective(sweep)
    lr = Trial.hyperparameters["lr"].as_float()
    # Thin large sweeps in SQL, every stride-th trial, before reading JSON out of each row.
    families_count = max(1, len(sweep.spec["space"]["optimizers"]))
    stride = max(1, math.ceil(sweep.num_trials / (families_count * max_points)))
    ranked = ranked_trials(sweep_id, maximize=maximize)
    if stride > 1:
        ranked = ranked.where(Trial.number % stride == 0)
    rows = session.execute(
        ranked.with_only_columns(Trial.optimizer, lr, Trial.objective_value, Trial.id)
        .order_by(None)  # by family, then lr, instead of best first
        .order_by(Trial.optimizer, lr)
    )
    families = _by_family(rows)
    thinned = [_thin(f, max_points, sweep_id) for f in families.values()]
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
    metric, maximize = _objective(sweep)
    improvements = session.execute(
        select(
            FamilyImprovement.optimizer,
            FamilyImprovement.epochs_spent,
            FamilyImprovement.value,
            FamilyImprovement.trial_id,
        )
        .where(FamilyImprovement.sweep_id == sweep_id)
        .order_by(FamilyImprovement.optimizer, FamilyImprovement.epochs_spent)
    )
    families = _by_family(improvements)
    tallies = session.scalars(select(FamilyTally).where(FamilyTally.sweep_id == sweep_id))
    for tally in tallies:  # the step runs on to all the family spent
        line = families.get(tally.optimizer)
        if line is not None and tally.epochs_spent > line.x[-1]:
            line.x.append(float(tally.epochs_spent))
            line.y.append(line.y[-1])
            line.trial_ids.append(line.trial_ids[-1])
    shown = []
    for family in families.values():
        if len(family.x) > max_points:
            trial_of = dict(zip(family.x, family.trial_ids, strict=False))
            xs, ys = lttb(family.x, family.y, max_points)
            family = FamilyPoints(
                optimizer=family.optimizer, x=xs, y=ys, trial_ids=[trial_of[x] for x in xs]
            )
        shown.append(family)
    return ChartJSON(Series(metric=metric, mode="max" if maximize else "min", families=shown))


@router.get(
    "/{sweep_id}/parallel", response_model=Parallel, response_class=ChartJSON, responses=NOT_FOUND
)
def parallel(sweep_id: int, session: SessionDep, limit: Limit = 1000) -> ChartJSON:
    """The ``limit`` best trials as (family, lr, beta1, beta2, objective) rows."""
    sweep = get_sweep(session, sweep_id)
    metric, maximize = _objective(sweep)
    trials = session.scalars(ranked_trials(sweep_id, maximize=maximize).limit(limit))
    rows = []
    for trial in trials:
        beta1, beta2 = _betas(trial.optimizer, trial.hyperparameters)
        rows.append(
            ParallelRow(
                trial_id=trial.id,
                optimizer=trial.optimizer,
                lr=float(trial.hyperparameters["lr"]),
                beta1=beta1,
                beta2=beta2,
                objective=float(trial.objective_value or 0.0),
            )
        )
    return ChartJSON(Parallel(metric=metric, rows=rows))


_IMPORTANCE_CACHE: dict[tuple[int, int, int, str, str | None], Importance] = {}
"""(sweep, finished trials, max_trials, method, family) -> importance: fANOVA takes seconds on
large sweeps, and a finished trial set does not change."""
_CACHE_LOCK = threading.Lock()


@router.get("/{sweep_id}/importance", responses=NOT_FOUND)
def importance(
    sweep_id: int,
    session: SessionDep,
    method: Literal["ped-anova", "fanova"] = "ped-anova",
    optimizer: Annotated[
        str | None, Query(description="Within this family (its lr and betas); default: across.")
    ] = None,
    max_trials: Annotated[int, Query(ge=10, le=20_000)] = 2000,
) -> Importance:
    """How much each hyperparameter matters for the objective, by Optuna's evaluators.

    Across families: the family, log lr, and beta1/beta2 only when every trial's family has
    them (as Optuna does with conditional parameters: a beta that some families lack would
    otherwise stand in for the family). Within one family (``optimizer``): its log lr and the
    betas it has. ``ped-anova`` (PED-ANOVA, fast: tens of ms for thousands of trials) or
    ``fanova`` (a random forest, seconds; at most 500 trials). Uses up to ``max_trials``
    finished trials (every k-th by number when there are more); parameters that did not vary
    are left out. Results are cached until more trials finish. Needs at least 4 trials.
    """
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution
    from optuna.importance import FanovaImportanceEvaluator, PedAnovaImportanceEvaluator

    sweep = get_sweep(session, sweep_id)
    metric, maximize = _objective(sweep)
    families_searched = sweep.spec["space"]["optimizers"]
    if optimizer is not None and optimizer not in families_searched:
        raise InputError(
            f"optimizer {short_repr(optimizer)} is not searched by sweep {sweep_id} "
            f"(it searches {', '.join(families_searched)})",
            loc=("query", "optimizer"),
        )
    finished = ranked_trials(sweep_id, maximize=maximize)
    if optimizer is not None:
        finished = finished.where(Trial.optimizer == optimizer)
    count = (
        session.scalar(select(func.count()).select_from(finished.order_by(None).subquery())) or 0
    )
    if method == "fanova":
        max_trials = min(max_trials, 500)
    key = (sweep_id, count, max_trials, method, optimizer)
    with _CACHE_LOCK:
        if key in _IMPORTANCE_CACHE:
            return _IMPORTANCE_CACHE[key]
    stride = max(1, math.ceil(count / max_trials))  # every stride-th trial, thinned in SQL
    if stride > 1:
        finished = finished.where(Trial.number % stride == 0)
    trials = list(session.scalars(finished))
    result = Importance(
        metric=metric, method=method, optimizer=optimizer, trials=len(trials), importances={}
    )
    if len(trials) < 4:
        return result
    columns: dict[str, list[Any]] = {
        "optimizer": [trial.optimizer for trial in trials],
        "lr": [float(trial.hyperparameters["lr"]) for trial in trials],
    }
    betas = [_betas(trial.optimizer, trial.hyperparameters) for trial in trials]
    for index, name in enumerate(("beta1", "beta2")):
        values = [pair[index] for pair in betas]
        if all(value is not None for value in values):
            columns[name] = values
    distributions: dict[str, Any] = {}
    for name, column in columns.items():
        if len(set(column)) < 2:  # did not vary: nothing to attribute
            continue
        if name == "optimizer":
            distributions[name] = CategoricalDistribution(sorted(set(column)))
        else:
            low, high = min(column), max(column)
            distributions[name] = FloatDistribution(low, high, log=name == "lr" and low > 0)
    if not distributions:
        return result
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize" if maximize else "minimize")
    study.add_trials(
        [
            optuna.trial.create_trial(
                params={name: columns[name][i] for name in distributions},
                distributions=distributions,
                value=float(trial.objective_value or 0.0),
            )
            for i, trial in enumerate(trials)
        ]
    )
    evaluator = (
        FanovaImportanceEvaluator(n_trees=32, max_depth=32, seed=0)
        if method == "fanova"
        else PedAnovaImportanceEvaluator()
    )
    found = optuna.importance.get_param_importances(study, evaluator=evaluator)
    result.importances = {name: float(value) for name, value in found.items()}
    with _CACHE_LOCK:
        if len(_IMPORTANCE_CACHE) >= 256:
            _IMPORTANCE_CACHE.clear()
        _IMPORTANCE_CACHE[key] = result
    return result


CSV_COLUMNS = [
    "id", "number", "optimizer", "status", "objective", "best_objective", "epochs_run",
    "attempt", "seed", "lr", "beta1", "beta2", "hyperparameters", "pack_id", "device",
    "started_at", "finished_at", "error",
]  # fmt: skip


CSV_BATCH = 5000
"""Trials read per query while the CSV streams (keyset pagination on the trial number)."""


@router.get(
    "/{sweep_id}/trials.csv",
    response_class=StreamingResponse,
    responses={**NOT_FOUND, 200: {"content": {"text/csv": {}}, "description": "The trials."}},
)
def trials_csv(sweep_id: int, session: SessionDep, request: Request) -> StreamingResponse:
    """Every trial of the sweep as CSV (one row per trial, hyperparameters as JSON), streamed."""
    get_sweep(session, sweep_id)
    sessions = request.app.state.sessions
    t = Trial.__table__.c
    columns = [
        t.id, t.number, t.optimizer, type_coerce(t.status, String), t.objective_value,
        t.objective_kind, t.best_objective_value, t.best_objective_kind, t.epochs_run,
        t.attempt, t.seed, t.hyperparameters, t.pack_id, t.device, t.started_at,
        t.finished_at, t.error,
    ]  # fmt: skip

    def rows() -> Iterator[str]:
        # Plain Core rows in batches, each from its own short transaction: 100,000 trials
        # stream in seconds without holding them all, or a connection, for the download.
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_COLUMNS)
        last = -1
        while True:
            with sessions() as batch_session:
                batch = (
                    batch_session.connection()
                    .execute(
                        select(*columns)
                        .where(t.sweep_id == sweep_id, t.number > last)
                        .order_by(t.number)
                        .limit(CSV_BATCH)
                    )
                    .all()
                )
            for row in batch:
                (
                    trial_id, number, optimizer, status, objective, objective_kind, best,
                    best_kind, epochs_run, attempt, seed, hparams, pack_id, device, started_at,
                    finished_at, error,
                ) = row  # fmt: skip
                beta1, beta2 = _betas(optimizer, hparams)
                writer.writerow(
                    [
                        trial_id, number, optimizer, status,
                        decode_float(objective, objective_kind), decode_float(best, best_kind),
                        epochs_run, attempt, seed,
                        hparams.get("lr"), beta1, beta2, json.dumps(hparams, sort_keys=True),
                        pack_id, device, started_at, finished_at, error,
                    ]
                )  # fmt: skip
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            if len(batch) < CSV_BATCH:
                return
            last = batch[-1][1]

    filename = f"sweep-{sweep_id}-trials.csv"
    return StreamingResponse(
        rows(),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
