"""Queries and writes for trials and their metrics; repositories flush, callers commit."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import (
    ColumnElement,
    and_,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from optisweep.service.db.base import MAX_ID, FloatKind, UTCDateTime, encode_float, get_by_id
from optisweep.service.errors import NotFoundError
from optisweep.service.pagination import decode_cursor, encode_cursor
from optisweep.service.trials.models import RANKED, Metric, Trial, TrialEvent, TrialState


def stop_trials(
    session: Session,
    where: ColumnElement[bool],
    *,
    at: datetime,
    error: str,
    status: TrialState = TrialState.STOPPED,
) -> None:
    """Mark the trials ``where`` selects ``status`` (STOPPED: they had run; CANCELLED: they
    never started) with ``error``, noting it in their histories."""
    events = TrialEvent.__table__.c
    session.execute(
        insert(TrialEvent).from_select(
            [events.trial_id, events.at, events.status, events.attempt, events.detail],
            select(
                Trial.id,
                literal(at, UTCDateTime()),
                literal(status, events.status.type),
                Trial.attempt,
                literal(error),
            ).where(where),
        )
    )
    session.execute(
        update(Trial)
        .where(where)
        .values(status=status, finished_at=at, error=error)
        .execution_options(synchronize_session=False)
    )


def cancel_pending(session: Session, where: ColumnElement[bool], *, at: datetime, why: str) -> None:
    """The PENDING trials among those ``where`` selects never start: CANCELLED, with ``why``."""
    stop_trials(
        session,
        where & (Trial.status == TrialState.PENDING),
        at=at,
        error=why,
        status=TrialState.CANCELLED,
    )


def list_events(session: Session, *, trial_id: int) -> list[TrialEvent]:
    """A trial's status history, oldest first."""
    return list(
        session.scalars(
            select(TrialEvent).where(TrialEvent.trial_id == trial_id).order_by(TrialEvent.id)
        )
    )


def record_metrics(
    session: Session, *, trial_id: int, rows: Iterable[tuple[int, Mapping[str, float]]]
) -> int:
    """Insert (epoch, {name: value}) rows; a row already stored is left as is (idempotent)."""
    return record_many_metrics(session, ((trial_id, step, metrics) for step, metrics in rows))


def record_many_metrics(
    session: Session, rows: Iterable[tuple[int, int, Mapping[str, float]]]
) -> int:
    """Insert (trial id, epoch, {name: value}) rows of any trials in one executemany (its
    statement compiled once and cached); a row already stored is left as is."""
    values = []
    for trial_id, step, metrics in rows:
        for name, value in metrics.items():
            finite, kind = encode_float(float(value))
            values.append(
                {
                    "trial_id": trial_id,
                    "name": name,
                    "step": step,
                    "value_finite": finite,
                    "value_kind": kind or FloatKind.FINITE,
                }
            )
    if not values:
        return 0
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(Metric).on_conflict_do_nothing(index_elements=["trial_id", "name", "step"])
    session.execute(statement, values)
    session.flush()
    return len(values)


def list_metrics(session: Session, *, trial_id: int) -> list[Metric]:
    """Every metric of a trial, by step then name."""
    statement = select(Metric).where(Metric.trial_id == trial_id).order_by(Metric.step, Metric.name)
    return list(session.scalars(statement))


def list_sweep_metrics(
    session: Session,
    *,
    sweep_id: int,
    name: str | None = None,
    limit: int = 10_000,
    cursor: str | None = None,
) -> tuple[list[Metric], str | None]:
    """A page of every metric of a sweep's trials, in the order they were written (by id), and
    the cursor of the next page (None on the last page)."""
    statement = select(Metric).join(Trial, Metric.trial_id == Trial.id)
    statement = statement.where(Trial.sweep_id == sweep_id)
    if name is not None:
        statement = statement.where(Metric.name == name)
    if cursor is not None:
        (last_id,) = decode_cursor(cursor, kinds=("id",))
        statement = statement.where(Metric.id > last_id)
    metrics = list(session.scalars(statement.order_by(Metric.id).limit(limit + 1)))
    if len(metrics) <= limit:
        return metrics, None
    return metrics[:limit], encode_cursor(metrics[limit - 1].id)


def get_trial(session: Session, trial_id: int) -> Trial:
    """The trial with this id; NotFoundError if there is none."""
    trial = get_by_id(session, Trial, trial_id)
    if trial is None:
        raise NotFoundError(f"trial {trial_id} not found")
    return trial


def trial_by_number(session: Session, sweep_id: int, number: int) -> Trial:
    """Trial ``number`` of a sweep (as users name trials: the sweep's own count from 0);
    NotFoundError if it has none (a number no column holds names none)."""
    trial = (
        session.scalars(
            select(Trial).where(Trial.sweep_id == sweep_id, Trial.number == number)
        ).first()
        if 0 <= number <= MAX_ID
        else None
    )
    if trial is None:
        raise NotFoundError(f"sweep {sweep_id} has no trial {number}")
    return trial


TrialSort = Literal["number", "objective", "best_objective"]
"""What a trial listing is ordered by."""

_SORT_COLUMNS = {
    "number": Trial.number,
    "objective": Trial.objective_value,
    "best_objective": Trial.best_objective_value,
}


def list_trials(
    session: Session,
    *,
    sweep_id: int,
    optimizer: str | None = None,
    status: TrialState | None = None,
    sort: TrialSort = "number",
    descending: bool = False,
    limit: int = 100,
    cursor: str | None = None,
) -> tuple[list[Trial], str | None]:
    """A page of a sweep's trials and the cursor of the next page (None on the last page).

    Trials without a finite value of the sort key (pending, failed, NaN) come last, by id.
    Each part is read in its index's order (valued trials on (sweep_id, value), then the
    others by id) and stops at the page's end, so a page costs the same at any sweep size.
    """
    column = _SORT_COLUMNS[sort]
    statement = select(Trial).where(Trial.sweep_id == sweep_id)
    if optimizer is not None:
        statement = statement.where(Trial.optimizer == optimizer)
    if status is not None:
        statement = statement.where(Trial.status == status)
    value, last_id = None, None
    if cursor is not None:
        value, last_id = decode_cursor(
            cursor, kinds=("int" if sort == "number" else "number_or_null", "id")
        )
    trials: list[Trial] = []
    if cursor is None or value is not None:
        valued = statement.where(column.is_not(None))
        if value is not None:
            beyond = column < value if descending else column > value
            valued = valued.where(or_(beyond, and_(column == value, Trial.id > last_id)))
        order = column.desc() if descending else column.asc()
        trials = list(session.scalars(valued.order_by(order, Trial.id).limit(limit + 1)))
    if len(trials) <= limit and sort != "number":  # a trial's number is never NULL
        unvalued = statement.where(column.is_(None))
        if cursor is not None and value is None:
            unvalued = unvalued.where(Trial.id > last_id)
        rest = unvalued.order_by(Trial.id).limit(limit + 1 - len(trials))
        trials += list(session.scalars(rest))
    if len(trials) <= limit:
        return trials, None
    last = trials[limit - 1]
    return trials[:limit], encode_cursor(getattr(last, column.key), last.id)


def delete_metrics(session: Session, *, trial_ids: Iterable[int], after_step: int = 0) -> None:
    """Forget the metrics of these trials after ``after_step`` (all of them by default)."""
    ids = list(trial_ids)
    if ids:
        session.execute(delete(Metric).where(Metric.trial_id.in_(ids), Metric.step > after_step))


def metric_curves(
    session: Session, *, trial_ids: Iterable[int], name: str
) -> dict[int, dict[int, float]]:
    """Trial id -> {epoch: value} of one metric, finite values only."""
    ids = list(trial_ids)
    curves: dict[int, dict[int, float]] = {trial_id: {} for trial_id in ids}
    if not ids:
        return curves
    rows = session.execute(
        select(Metric.trial_id, Metric.step, Metric.value_finite).where(
            Metric.trial_id.in_(ids), Metric.name == name, Metric.value_kind == FloatKind.FINITE
        )
    )
    for trial_id, step, value in rows:
        if value is not None:
            curves[trial_id][step] = value
    return curves


def final_metrics(
    session: Session, *, sweep_id: int, names: Iterable[str], trial_ids: Iterable[int] | None = None
) -> dict[int, dict[str, float]]:
    """Trial id -> the finite values metrics ``names`` had at the trial's last recorded epoch
    (its ``epochs_run``: what its final objective is), for the sweep's trials (or these)."""
    query = (
        select(Metric.trial_id, Metric.name, Metric.value_finite)
        .join(Trial, Trial.id == Metric.trial_id)
        .where(
            Trial.sweep_id == sweep_id,
            Metric.name.in_(list(names)),
            Metric.step == Trial.epochs_run,
            Metric.value_kind == FloatKind.FINITE,
        )
    )
    if trial_ids is not None:
        query = query.where(Trial.id.in_(list(trial_ids)))
    found: dict[int, dict[str, float]] = {}
    for trial_id, name, value in session.execute(query):
        if value is not None:
            found.setdefault(trial_id, {})[name] = float(value)
    return found


@dataclass(frozen=True)
class ObjectivePoint:
    """A ranked trial's final value of each objective."""

    trial_id: int
    number: int
    optimizer: str
    values: tuple[float, ...]


def objective_points(
    session: Session, *, sweep_id: int, others: Sequence[str]
) -> list[ObjectivePoint]:
    """The sweep's ranked trials (completed or stopped, finite objective) with a finite final
    value of each metric in ``others``: their objective, then those values."""
    rows = session.execute(
        select(Trial.id, Trial.number, Trial.optimizer, Trial.objective_value).where(
            Trial.sweep_id == sweep_id,
            Trial.status.in_(RANKED),
            Trial.objective_kind == FloatKind.FINITE,
        )
    ).all()
    finals = final_metrics(session, sweep_id=sweep_id, names=others)
    points = []
    for trial_id, number, optimizer, objective in rows:
        found = finals.get(trial_id, {})
        if objective is not None and all(name in found for name in others):
            values = (float(objective), *(found[name] for name in others))
            points.append(ObjectivePoint(trial_id, number, optimizer, values))
    return points


def best_metric(
    session: Session, *, trial_id: int, name: str, mode: Literal["min", "max"]
) -> float | None:
    """The best finite value metric ``name`` of a trial reached, or None if it has none."""
    best = func.max if mode == "max" else func.min
    return session.scalar(
        select(best(Metric.value_finite)).where(
            Metric.trial_id == trial_id,
            Metric.name == name,
            Metric.value_kind == FloatKind.FINITE,
        )
    )
