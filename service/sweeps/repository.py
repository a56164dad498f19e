"""Queries and writes for sweeps; repositories flush, callers commit."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from cachetools import LRUCache
from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.orm import Session

from optisweep.service.db.base import get_by_id, utcnow
from optisweep.service.errors import ConflictError, NotFoundError
from optisweep.service.sweeps.models import Sweep, SweepStatus
from optisweep.service.sweeps.schemas import SweepCreate
from optisweep.service.trials.models import Trial, TrialState
from optisweep.service.trials.repository import cancel_pending, stop_trials
from optisweep.service.trials.tallies import status_counts

ACTIVE = (SweepStatus.PENDING, SweepStatus.RUNNING)
"""Statuses of a sweep that is not finished."""


def create_sweep(
    session: Session,
    *,
    spec: SweepCreate,
    num_trials: int,
    claimed_by: str | None = None,
    packing: str | None = None,
    project_id: int,
    created_by: int | None = None,
) -> Sweep:
    """A new PENDING sweep in a project; ``claimed_by`` hands it to one controller from the
    start."""
    sweep = Sweep(
        project_id=project_id,
        created_by=created_by,
        packing=packing,
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


_SPECS: LRUCache[tuple[int, datetime], SweepCreate] = LRUCache(maxsize=4096)
_SPECS_LOCK = threading.Lock()


def stored_spec(sweep: Sweep) -> SweepCreate:
    """The sweep's spec as submitted, typed (validated once per sweep, then cached: a sweep's
    spec never changes)."""
    key = (sweep.id, sweep.created_at)
    with _SPECS_LOCK:
        spec = _SPECS.get(key)
    if spec is None:
        spec = SweepCreate.model_validate(sweep.spec)
        with _SPECS_LOCK:
            _SPECS[key] = spec
    return spec


def get_sweep(session: Session, sweep_id: int) -> Sweep:
    """The sweep with this id; NotFoundError if there is none."""
    sweep = get_by_id(session, Sweep, sweep_id)
    if sweep is None:
        raise NotFoundError(f"sweep {sweep_id} not found")
    return sweep


def list_sweeps(
    session: Session,
    *,
    status: SweepStatus | None,
    limit: int,
    before_id: int | None,
    project_ids: list[int] | None = None,
) -> list[Sweep]:
    """Up to ``limit`` sweeps, newest first, older than ``before_id`` when given, of these
    projects (None: all)."""
    statement = select(Sweep).order_by(Sweep.id.desc()).limit(limit)
    if project_ids is not None:
        statement = statement.where(Sweep.project_id.in_(project_ids))
    if status is not None:
        statement = statement.where(Sweep.status == status)
    if before_id is not None:
        statement = statement.where(Sweep.id < before_id)
    return list(session.scalars(statement))


def trial_counts(session: Session, sweep_ids: Iterable[int]) -> dict[int, dict[TrialState, int]]:
    """How many trials of each sweep are in each status (statuses with none are absent)."""
    return status_counts(session, sweep_ids)


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


def _claimable(controller_id: str, *, now: datetime, lease: timedelta) -> ColumnElement[bool]:
    """Sweeps this controller may claim: unclaimed, its own, or their claim's lease ran out."""
    return or_(
        Sweep.claimed_by.is_(None),
        Sweep.claimed_by == controller_id,
        Sweep.heartbeat_at < now - lease,
    )


def claim_sweeps(
    session: Session,
    *,
    controller_id: str,
    now: datetime,
    lease: timedelta,
    only: int | None = None,
) -> list[Sweep]:
    """Claim every unfinished sweep this controller may (renewing its heartbeat), ``only``
    that one if given; the unfinished sweeps it owns now."""
    conditions = [Sweep.status.in_(ACTIVE), _claimable(controller_id, now=now, lease=lease)]
    if only is not None:
        conditions.append(Sweep.id == only)
    session.execute(
        update(Sweep)
        .where(*conditions)
        .values(claimed_by=controller_id, heartbeat_at=now)
        .values(updated_at=Sweep.updated_at)
        .execution_options(synchronize_session=False)
    )
    return list(
        session.scalars(
            select(Sweep).where(Sweep.claimed_by == controller_id, Sweep.status.in_(ACTIVE))
        )
    )


def stop_abandoned(
    session: Session, *, controller_id: str, now: datetime, lease: timedelta
) -> None:
    """Trials left open in sweeps that finished (were cancelled) while no controller ran them:
    those that never started CANCELLED, those that had started STOPPED."""
    finished = select(Sweep.id).where(
        Sweep.status.not_in(ACTIVE), _claimable(controller_id, now=now, lease=lease)
    )
    cancel_pending(session, Trial.sweep_id.in_(finished), at=now, why="sweep cancelled")
    running = Trial.sweep_id.in_(finished) & (Trial.status == TrialState.RUNNING)
    stop_trials(session, running, at=now, error="sweep cancelled")


def start_sweep(session: Session, sweep_id: int, *, num_trials: int | None = None) -> bool:
    """PENDING -> RUNNING (with its trial count, when expanded now); False if it was cancelled."""
    values: dict[str, Any] = {"status": SweepStatus.RUNNING}
    if num_trials is not None:
        values["num_trials"] = num_trials
    result = session.execute(
        update(Sweep)
        .where(Sweep.id == sweep_id, Sweep.status == SweepStatus.PENDING)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def default_project_id(session: Session) -> int:
    """The ``default`` project's id (sweeps run by ``optisweep run`` go there)."""
    from optisweep.service.accounts.models import Project

    project_id = session.scalar(select(Project.id).where(Project.name == "default"))
    if project_id is None:
        project = Project(name="default")
        session.add(project)
        session.flush()
        project_id = project.id
    return project_id
