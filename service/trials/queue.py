"""The controller's queries on trials: creating them, finding what to run, counting how they
ended; repositories flush, callers commit."""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice
from typing import Any

from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session

from optisweep.service.trials.models import Trial, TrialState
from optisweep.service.trials.tallies import status_counts
from optisweep.workers.states import OPEN

INSERT_CHUNK = 10_000
"""Trials written per statement: a large sweep's rows are drawn and written a chunk at a time."""


ANALYZE_AFTER = 10_000
"""Trials inserted at once from which PostgreSQL's statistics of the table are renewed."""


def insert_trials(session: Session, rows: Iterable[dict[str, Any]]) -> None:
    """Insert new trials (rows of column values, drawn as they are written), a statement per
    ``INSERT_CHUNK`` rows. After a bulk load PostgreSQL's statistics are renewed, as its
    manual advises, so its plans do not take a sweep of a million trials for a handful."""
    rows, inserted = iter(rows), 0
    while chunk := list(islice(rows, INSERT_CHUNK)):
        session.execute(insert(Trial), chunk)
        inserted += len(chunk)
    if inserted >= ANALYZE_AFTER and session.get_bind().dialect.name == "postgresql":
        session.execute(text("ANALYZE trials"))


def interrupted_trials(session: Session, *, sweep_id: int, in_flight: Iterable[int]) -> list[Trial]:
    """The sweep's RUNNING trials that no task in flight trains (a previous controller's)."""
    return list(
        session.scalars(
            select(Trial).where(
                Trial.sweep_id == sweep_id,
                Trial.status == TrialState.RUNNING,
                Trial.id.not_in(list(in_flight) or [-1]),
            )
        )
    )


def sweep_trials(session: Session, *, sweep_id: int, ended: bool = False) -> list[Trial]:
    """Every trial of a sweep (only those that ended, with ``ended``)."""
    statement = select(Trial).where(Trial.sweep_id == sweep_id)
    if ended:
        statement = statement.where(Trial.status.not_in(OPEN))
    return list(session.scalars(statement))


def count_trials(session: Session, *, sweep_id: int) -> int:
    """How many trials a sweep has (from its status tallies: a few rows, however many)."""
    return sum(status_counts(session, [sweep_id])[sweep_id].values())


def trials_by_id(session: Session, trial_ids: Iterable[int]) -> dict[int, Trial]:
    """These trials, by id."""
    ids = set(trial_ids)
    return {t.id: t for t in session.scalars(select(Trial).where(Trial.id.in_(ids)))}


def pending_trials(
    session: Session, *, sweep_ids: Iterable[int], in_flight: Iterable[int], limit: int
) -> list[Trial]:
    """PENDING trials of these sweeps that no task trains yet, by sweep and number."""
    return list(
        session.scalars(
            select(Trial)
            .where(
                Trial.sweep_id.in_(list(sweep_ids)),
                Trial.status == TrialState.PENDING,
                Trial.id.not_in(list(in_flight) or [-1]),
            )
            .order_by(Trial.sweep_id, Trial.number)
            .limit(limit)
        ).all()
    )


def commonest_failure(session: Session, *, sweep_id: int) -> tuple[str | None, int] | None:
    """The error most of a sweep's failed trials share and how many share it, or None."""
    row = session.execute(
        select(Trial.error, func.count())
        .where(Trial.sweep_id == sweep_id, Trial.status == TrialState.FAILED)
        .group_by(Trial.error)
        .order_by(func.count().desc(), Trial.error)
        .limit(1)
    ).first()
    return (row[0], int(row[1])) if row is not None else None
