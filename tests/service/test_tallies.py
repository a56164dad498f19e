"""Status tallies: the database's triggers count every change of a trial's status, whoever
makes it, and a count read before or after the controller's fold equals a GROUP BY over the
trials, on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.orm import Session

from optisweep.service.models import StatusDelta, Sweep, SweepStatus, Trial, TrialState
from optisweep.service.sweeps.repository import default_project_id
from optisweep.service.trials import tallies
from optisweep.service.trials.queue import insert_trials, pending_trials


def _sweep(session: Session, trials: int) -> int:
    sweep = Sweep(
        name="tallied",
        spec={"name": "tallied"},
        status=SweepStatus.RUNNING,
        num_trials=trials,
        project_id=default_project_id(session),
    )
    session.add(sweep)
    session.flush()
    rows = [
        {
            "sweep_id": sweep.id,
            "number": number,
            "optimizer": "adam" if number % 2 else "sgd",
            "hyperparameters": {"lr": 0.01},
            "seed": number,
            "status": TrialState.PENDING,
        }
        for number in range(trials)
    ]
    insert_trials(session, rows)
    return sweep.id


def _truth(session: Session, sweep_id: int) -> dict[TrialState, int]:
    return {
        TrialState(status): count
        for status, count in session.execute(
            select(Trial.status, func.count())
            .where(Trial.sweep_id == sweep_id)
            .group_by(Trial.status)
        )
    }


def test_counts_follow_every_kind_of_change_before_and_after_folds(session: Session) -> None:
    sweep_id = _sweep(session, 50)
    other = _sweep(session, 7)
    assert tallies.status_counts(session, [sweep_id, other]) == {
        sweep_id: {TrialState.PENDING: 50},
        other: {TrialState.PENDING: 7},
    }
    tallies.fold(session)
    trials = list(session.scalars(select(Trial).where(Trial.sweep_id == sweep_id)))
    for trial in trials[:20]:  # the recorder's way: ORM objects, one flush
        trial.status = TrialState.RUNNING
    session.flush()
    for trial in trials[:5]:
        trial.status = TrialState.COMPLETED
    trials[5].status = TrialState.FAILED
    trials[6].epochs_run = 3  # no status change: no delta
    session.flush()
    counted = tallies.status_counts(session, [sweep_id])[sweep_id]
    assert counted == _truth(session, sweep_id)
    assert counted == {TrialState.PENDING: 30, TrialState.RUNNING: 14, TrialState.COMPLETED: 5,
                       TrialState.FAILED: 1}  # fmt: skip
    tallies.fold(session)
    assert session.scalar(select(func.count()).select_from(StatusDelta)) == 0
    # a bulk update (a cancel's), a delete, then counts both folded and not
    session.execute(
        update(Trial)
        .where(Trial.sweep_id == sweep_id, Trial.status == TrialState.PENDING)
        .values(status=TrialState.CANCELLED)
    )
    session.execute(delete(Trial).where(Trial.id == trials[0].id))
    session.expire_all()
    expected = {TrialState.CANCELLED: 30, TrialState.RUNNING: 14, TrialState.COMPLETED: 4,
                TrialState.FAILED: 1}  # fmt: skip
    assert tallies.status_counts(session, [sweep_id])[sweep_id] == expected
    tallies.fold(session)
    tallies.fold(session)  # nothing left to fold: nothing changes
    assert tallies.status_counts(session, [sweep_id, other]) == {
        sweep_id: expected,
        other: {TrialState.PENDING: 7},
    }
    assert expected == _truth(session, sweep_id)
    assert tallies.status_counts(session, []) == {}


def test_pending_trials_come_in_number_order_past_ended_ones(session: Session) -> None:
    sweep_id = _sweep(session, 40)
    session.execute(
        update(Trial)
        .where(Trial.sweep_id == sweep_id, Trial.number < 25)
        .values(status=TrialState.COMPLETED)
    )
    first = session.scalar(select(Trial.id).where(Trial.sweep_id == sweep_id, Trial.number == 26))
    found = pending_trials(session, sweep_ids=[sweep_id], in_flight=[first], limit=5)
    assert [t.number for t in found] == [25, 27, 28, 29, 30]


def test_the_folded_deltas_are_reclaimed(migrated_engine: Engine) -> None:
    with Session(migrated_engine) as session:
        sweep_id = _sweep(session, 3)
        session.commit()
        tallies.fold(session)
        session.commit()
    tallies.vacuum(migrated_engine)  # outside a transaction, as PostgreSQL's VACUUM must run
    with Session(migrated_engine) as session:
        assert tallies.status_counts(session, [sweep_id]) == {sweep_id: {TrialState.PENDING: 3}}
        assert session.scalar(select(func.count()).select_from(StatusDelta)) == 0
        session.execute(delete(Sweep).where(Sweep.id == sweep_id))  # its trials go with it
        session.commit()
        assert tallies.status_counts(session, [sweep_id]) == {sweep_id: {}}
        tallies.fold(session)
        session.commit()
