"""The SQL behind the dashboard's charts, and the small helpers that shape its rows."""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import String, select, type_coerce
from sqlalchemy.orm import Session

from optisweep.optimizers import get_spec
from optisweep.service.dashboard.schemas import FamilyPoints
from optisweep.service.sweeps.models import Sweep
from optisweep.service.sweeps.repository import stored_spec
from optisweep.service.trials.models import (
    TRIAL_LR,
    FamilyImprovement,
    FamilyTally,
    Metric,
    Trial,
)
from optisweep.service.trials.ranking import every_kth, ranked_trials

_NON_FINITE = {"nan": math.nan, "inf_pos": math.inf, "inf_neg": -math.inf}


def objective(sweep: Sweep) -> tuple[str, bool]:
    """The sweep's objective metric and whether it is maximised."""
    spec = stored_spec(sweep)
    return spec.objective.metric, spec.objective.mode == "max"


def by_family(rows: Iterable[tuple[str, float, float, int]]) -> dict[str, FamilyPoints]:
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


def betas(optimizer: str, hyperparameters: dict[str, Any]) -> tuple[float | None, float | None]:
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


def thin(family: FamilyPoints, max_points: int, seed: int) -> FamilyPoints:
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


def best_trials(
    session: Session, sweep: Sweep, *, maximize: bool, limit: int, also: Iterable[Trial] = ()
) -> dict[int, Trial]:
    """The ``limit`` trials with the best objective so far, and ``also`` these, by id."""
    best_value = Trial.best_objective_value
    order = best_value.desc() if maximize else best_value.asc()  # the index's order
    chosen = session.scalars(
        select(Trial)
        .where(Trial.sweep_id == sweep.id, best_value.is_not(None))
        .order_by(order)
        .limit(limit)
    )
    by_id = {trial.id: trial for trial in chosen}
    by_id.update({trial.id: trial for trial in also})
    return by_id


def family_bests(session: Session, sweep: Sweep, *, maximize: bool) -> list[Trial]:
    """Each family's best finished trial (completed or stopped, finite objective)."""
    found = []
    for family in stored_spec(sweep).space.optimizers:
        best = session.scalars(
            ranked_trials(sweep.id, maximize=maximize).where(Trial.optimizer == family).limit(1)
        ).first()
        if best is not None:
            found.append(best)
    return found


def curve_points(
    session: Session, trial_ids: Iterable[int], metric: str
) -> dict[int, list[tuple[int, float]]]:
    """Each trial's (epoch, value) points of ``metric``, NaN and inf as such."""
    points: dict[int, list[tuple[int, float]]] = defaultdict(list)
    # Plain Core rows (no ORM entities, no enum conversion): tens of thousands of points.
    table = Metric.__table__.c
    rows = session.connection().execute(
        select(
            table.trial_id, table.step, table.value_finite, type_coerce(table.value_kind, String)
        )
        .where(table.trial_id.in_(list(trial_ids)), table.name == metric)
        .order_by(table.trial_id, table.step)
    )
    for trial_id, step, value, kind in rows.all():
        finite = kind == "finite" and value is not None
        points[trial_id].append((step, float(value) if finite else _NON_FINITE.get(kind, math.nan)))
    return points


def lr_rows(
    session: Session, sweep: Sweep, *, maximize: bool, max_points: int
) -> Iterable[Sequence[Any]]:
    """(family, lr, objective, trial id, settings) of finished trials by family and lr; a
    large sweep is thinned in SQL (every stride-th trial) before JSON is read out of each row."""
    lr = TRIAL_LR
    families = max(1, len(stored_spec(sweep).space.optimizers))
    stride = max(1, math.ceil(sweep.num_trials / (families * max_points)))
    ranked = every_kth(
        session, ranked_trials(sweep.id, maximize=maximize), sweep_id=sweep.id, stride=stride
    )
    return session.execute(
        ranked.with_only_columns(
            Trial.optimizer, lr, Trial.objective_value, Trial.id, Trial.settings
        )
        .order_by(None)  # by family, then lr, instead of best first
        .order_by(Trial.optimizer, lr)
    )


def improvements(session: Session, sweep_id: int) -> dict[str, FamilyPoints]:
    """Per family, the points where its best objective improved, then on to every epoch its
    trials spent (the controller keeps these as reports arrive: a few rows at any size)."""
    rows = session.execute(
        select(
            FamilyImprovement.optimizer,
            FamilyImprovement.epochs_spent,
            FamilyImprovement.value,
            FamilyImprovement.trial_id,
        )
        .where(FamilyImprovement.sweep_id == sweep_id)
        .order_by(FamilyImprovement.optimizer, FamilyImprovement.epochs_spent)
    )
    families = by_family(rows)
    for tally in session.scalars(select(FamilyTally).where(FamilyTally.sweep_id == sweep_id)):
        line = families.get(tally.optimizer)
        if line is not None and tally.epochs_spent > line.x[-1]:
            line.x.append(float(tally.epochs_spent))
            line.y.append(line.y[-1])
            line.trial_ids.append(line.trial_ids[-1])
    return families
