"""Queries and writes for sweeps; repositories flush, callers commit."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from service.db.base import get_by_id, utcnow
from service.errors import ConflictError, NotFoundError
from service.sweeps.models import Sweep, SweepStatus
from service.sweeps.schemas import SweepCreate
from service.trials.models import Trial, TrialStatus
from service.trials.repository import cancel_pending

ACTIVE = (SweepStatus.PENDING, SweepStatus.RUNNING)
"""Statuses of a sweep that is not finished."""


def create_sweep(
    session: Session, *, spec: SweepCreate, num_trials: int, claimed_by: str | None = None
) -> Sweep:
    """A new PENDING sweep; ``claimed_by`` hands it to one controller from the start."""
    sweep = Sweep(
        name=spec.name,
        spec=spec.model_dump(mode="json"),
        status=SweepStatus.PENDING,
        num_trials=num_trials,
        claimed_by=claimed_by,
        heartbeat_at=utcnow() if claimed_by else None,
    )
    session.add(sweep)
    session.flush()
    return sweep


def get_sweep(session: Session, sweep_id: int) -> Sweep:
    """The sweep with this id; NotFoundError if there is none."""
    sweep = get_by_id(session, Sweep, sweep_id)
    if sweep is None:
        raise NotFoundError(f"sweep {sweep_id} not found")
    return sweep


def list_sweeps(
    session: Session, *, status: SweepStatus | None, limit: int, before_id: int | None
) -> list[Sweep]:
    """Up to ``limit`` sweeps, newest first, older than ``before_id`` when given."""
    statement = select(Sweep).order_by(Sweep.id.desc()).limit(limit)
    if status is not None:
        statement = statement.where(Sweep.status == status)
    if before_id is not None:
        statement = statement.where(Sweep.id < before_id)
    return list(session.scalars(statement))


def trial_counts(session: Session, sweep_ids: Iterable[int]) -> dict[int, dict[TrialStatus, int]]:
    """How many trials of each sweep are in each status (statuses with none are absent)."""
    ids = list(sweep_ids)
    counts: dict[int, dict[TrialStatus, int]] = {sweep_id: {} for sweep_id in ids}
    if not ids:
        return counts
    statement = (
        select(Trial.sweep_id, Trial.status, func.count())
        .where(Trial.sweep_id.in_(ids))
        .group_by(Trial.sweep_id, Trial.status)
    )
    for sweep_id, status, count in session.execute(statement):
        counts[sweep_id][status] = count
    return counts


def cancel_sweep(session: Session, sweep_id: int) -> Sweep:
    """Mark an unfinished sweep CANCELLED and its pending trials too; running ones stop later.

    ConflictError if the sweep already finished.
    """
    sweep = get_sweep(session, sweep_id)
    now = utcnow()
    result = session.execute(
        update(Sweep)
        .where(Sweep.id == sweep_id, Sweep.status.in_(ACTIVE))
        .values(status=SweepStatus.CANCELLED, finished_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount == 0:  # type: ignore[attr-defined]
        session.refresh(sweep)
        raise ConflictError(f"sweep {sweep_id} is already {sweep.status.value}")
    cancel_pending(session, Trial.sweep_id == sweep_id, at=now, why="sweep cancelled")
    session.refresh(sweep)
    return sweep


def finish_sweep(
    session: Session, sweep: Sweep, status: SweepStatus, *, at: datetime, error: str | None = None
) -> bool:
    """Move a running sweep to a final status unless someone cancelled it first."""
    result = session.execute(
        update(Sweep)
        .where(Sweep.id == sweep.id, Sweep.status.in_(ACTIVE))
        .values(status=status, finished_at=at, updated_at=at, claimed_by=None, error=error)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
