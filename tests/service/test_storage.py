"""Storage on SQLite and PostgreSQL: migrations match the models, NaN/inf survive, writes replay."""

from __future__ import annotations

import math

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.db.base import Base, FloatKind
from service.models import Metric, Sweep, SweepStatus, Trial, TrialStatus
from service.trials.repository import list_metrics, record_metrics


def test_autogenerate_against_head_finds_no_difference(migrated_engine: Engine) -> None:
    with migrated_engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def _trial(session: Session) -> Trial:
    sweep = Sweep(name="s", spec={"name": "s"}, status=SweepStatus.RUNNING, num_trials=1)
    session.add(sweep)
    session.flush()
    trial = Trial(
        sweep_id=sweep.id,
        number=0,
        optimizer="adam",
        hyperparameters={"lr": 0.01, "betas": [0.9, 0.999]},
        seed=1,
        status=TrialStatus.RUNNING,
    )
    session.add(trial)
    session.flush()
    return trial


@pytest.mark.parametrize("value", [1.25, -0.0, math.nan, math.inf, -math.inf, 1e308])
def test_non_finite_objectives_round_trip(session: Session, value: float) -> None:
    trial = _trial(session)
    trial.objective = value
    trial.best_objective = value
    session.flush()
    session.expire_all()
    stored = session.get(Trial, trial.id)
    assert stored is not None
    for got in (stored.objective, stored.best_objective):
        assert got is not None
        assert (math.isnan(got) and math.isnan(value)) or got == value


def test_metrics_store_nan_and_inf_and_replay_idempotently(session: Session) -> None:
    trial = _trial(session)
    rows = [
        (1, {"train_loss": 0.5, "val_accuracy": 0.8}),
        (2, {"train_loss": math.inf, "val_accuracy": math.nan}),
        (3, {"train_loss": -math.inf, "val_accuracy": 0.0}),
    ]
    assert record_metrics(session, trial_id=trial.id, rows=rows) == 6
    record_metrics(session, trial_id=trial.id, rows=rows)  # a replayed batch
    stored = list_metrics(session, trial_id=trial.id)
    assert [(m.step, m.name) for m in stored] == [
        (step, name) for step, metrics in rows for name in sorted(metrics)
    ]
    values = {(m.step, m.name): m.value for m in stored}
    assert values[(1, "train_loss")] == 0.5
    assert values[(2, "train_loss")] == math.inf
    assert math.isnan(values[(2, "val_accuracy")])
    assert values[(3, "train_loss")] == -math.inf
    kinds = session.scalars(select(Metric.value_kind).where(Metric.trial_id == trial.id))
    assert set(kinds) == {FloatKind.FINITE, FloatKind.NAN, FloatKind.INF_POS, FloatKind.INF_NEG}


def test_trial_numbers_are_unique_within_a_sweep(session: Session) -> None:
    trial = _trial(session)
    duplicate = Trial(
        sweep_id=trial.sweep_id,
        number=trial.number,
        optimizer="sgd",
        hyperparameters={},
        seed=2,
        status=TrialStatus.PENDING,
    )
    session.add(duplicate)
    with pytest.raises(IntegrityError):
        session.flush()


def test_relationships_refuse_lazy_loads(session: Session) -> None:
    trial = _trial(session)
    session.expire_all()
    stored = session.get(Trial, trial.id)
    assert stored is not None
    with pytest.raises(Exception, match="lazy='raise'"):
        _ = stored.sweep
