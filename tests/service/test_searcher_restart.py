"""A restarted controller rebuilds an adaptive searcher from the stored trials."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, func, select

from optisweep.service.controller.loop import Controller
from optisweep.service.db.session import make_sessionmaker
from optisweep.service.search import AdaptiveSearcher
from optisweep.service.sweeps.repository import create_sweep, default_project_id
from optisweep.service.sweeps.schemas import SweepCreate
from optisweep.service.trials.models import Trial, TrialState

SPEC = {
    "name": "tpe-restart",
    "workload": {"name": "rosenbrock", "epochs": 2, "steps_per_epoch": 10},
    "space": {
        "optimizers": ["adam", "sgd"],
        "lr": {"low": 1e-4, "high": 1e-2, "log": True},
        "beta2": {"low": 0.9, "high": 0.999, "log_one_minus": True},
    },
    "search": {"algorithm": "tpe", "num_trials": 8, "seed": 1, "concurrency": 2},
    "objective": {"metric": "val_loss", "mode": "min"},
    "resources": {"pack": False},
}
FINISHED = (TrialState.COMPLETED, TrialState.DIVERGED, TrialState.STOPPED, TrialState.FAILED)


class _InterruptError(Exception):
    pass


@pytest.mark.usefixtures("ray_local")
def test_a_restarted_controller_has_seen_every_finished_trial(migrated_engine: Engine) -> None:
    sessions = make_sessionmaker(migrated_engine)
    owner = "tpe-restart-test"
    with sessions.begin() as session:
        sweep_id = create_sweep(
            session,
            spec=SweepCreate.model_validate(SPEC),
            num_trials=8,
            claimed_by=owner,
            project_id=default_project_id(session),
        ).id

    def finished() -> int:
        with sessions() as session:
            return (
                session.scalar(
                    select(func.count()).where(
                        Trial.sweep_id == sweep_id, Trial.status.in_(FINISHED)
                    )
                )
                or 0
            )

    def interrupt_after_four() -> None:
        if finished() >= 4:
            raise _InterruptError

    first = Controller(sessions, max_trials=100, controller_id=owner, sweep_id=sweep_id)
    with pytest.raises(_InterruptError):
        first.run_sweep(sweep_id, on_tick=interrupt_after_four)
    done = finished()
    assert 4 <= done < 8

    second = Controller(sessions, max_trials=100, controller_id=owner, sweep_id=sweep_id)
    second.run_sweep(sweep_id, on_tick=second.stop)  # one tick: adopt and rebuild
    searcher = second.state.searchers[sweep_id]  # white box: what the rebuilt searcher knows
    while not isinstance(searcher, AdaptiveSearcher):  # under its repeats and concurrency
        searcher = searcher.searcher  # type: ignore[attr-defined]
    assert searcher.told == done

    third = Controller(sessions, max_trials=100, controller_id=owner, sweep_id=sweep_id)
    third.run_sweep(sweep_id)
    with sessions() as session:
        trials = list(session.scalars(select(Trial).where(Trial.sweep_id == sweep_id)))
    assert sorted(t.number for t in trials) == list(range(8))
    assert all(t.status in FINISHED for t in trials)
    assert all(t.search_params and "optimizer" in t.search_params for t in trials)
