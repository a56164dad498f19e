"""Storage on SQLite and PostgreSQL: migrations match the models, NaN/inf survive, writes replay."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from optisweep.service.db.base import Base, FloatKind, utcnow
from optisweep.service.db.migrate import upgrade_engine
from optisweep.service.db.session import make_engine
from optisweep.service.models import Metric, Sweep, SweepStatus, Trial, TrialState
from optisweep.service.sweeps.repository import default_project_id
from optisweep.service.trials.models import FamilyImprovement, FamilyTally
from optisweep.service.trials.repository import list_metrics, record_metrics
from optisweep.service.trials.tallies import status_counts
from tests.service.conftest import fresh_postgres_database


def test_autogenerate_against_head_finds_no_difference(migrated_engine: Engine) -> None:
    with migrated_engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def _trial(session: Session) -> Trial:
    sweep = Sweep(
        name="s",
        spec={"name": "s"},
        status=SweepStatus.RUNNING,
        num_trials=1,
        project_id=default_project_id(session),
    )
    session.add(sweep)
    session.flush()
    trial = Trial(
        sweep_id=sweep.id,
        number=0,
        optimizer="adam",
        hyperparameters={"lr": 0.01, "betas": [0.9, 0.999]},
        seed=1,
        status=TrialState.RUNNING,
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
        status=TrialState.PENDING,
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


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new, empty database of each kind (not the session's migrated one)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    with fresh_postgres_database() as url:
        yield url


def test_upgrading_a_database_with_recorded_sweeps_tallies_their_families(
    empty_database: str,
) -> None:
    engine = make_engine(empty_database)
    upgrade_engine(engine, "0003")
    spec = json.dumps({"name": "old", "objective": {"metric": "acc", "mode": "max"}})
    # (number, family, epochs run, best objective) of a sweep recorded before revision 0004.
    recorded = [(0, "adam", 3, 0.5), (1, "sgd", 2, 0.4), (2, "adam", 3, 0.45), (3, "adam", 1, 0.7)]
    with engine.begin() as db:
        db.execute(
            text(
                "INSERT INTO sweeps (id, name, spec, status, num_trials, created_at, updated_at)"
                " VALUES (1, 'old', :spec, 'completed', 4, :now, :now)"
            ),
            {"spec": spec, "now": utcnow()},
        )
        for number, family, epochs, best in recorded:
            db.execute(
                text(
                    "INSERT INTO trials (id, sweep_id, number, optimizer, hyperparameters, seed,"
                    " status, attempt, epochs_run, best_objective_value, best_objective_kind,"
                    " created_at) VALUES (:id, 1, :number, :family, '{}', 0, 'completed', 1,"
                    " :epochs, :best, 'finite', :now)"
                ),
                {"id": number + 1, "number": number, "family": family, "epochs": epochs,
                 "best": best, "now": utcnow()},
            )  # fmt: skip
        db.execute(
            text(
                "INSERT INTO metrics (trial_id, name, step, value_finite, value_kind)"
                " VALUES (1, 'acc', 1, 0.5, 'finite')"
            )
        )
    upgrade_engine(engine)
    with Session(engine) as session:
        tallies = {
            t.optimizer: (t.epochs_spent, t.best_value, t.best_trial_id)
            for t in session.scalars(select(FamilyTally))
        }
        assert tallies == {"adam": (7, 0.7, 4), "sgd": (2, 0.4, 2)}
        improvements = session.execute(
            select(
                FamilyImprovement.optimizer, FamilyImprovement.epochs_spent, FamilyImprovement.value
            ).order_by(FamilyImprovement.id)
        ).all()
        # adam: 0.5 after 3 epochs, then 0.45 is no better, then 0.7 after 3 + 3 + 1.
        assert sorted(tuple(row) for row in improvements) == [
            ("adam", 3, 0.5),
            ("adam", 7, 0.7),
            ("sgd", 2, 0.4),
        ]
        assert [m.value for m in list_metrics(session, trial_id=1)] == [0.5]
        # revision 0010 counted the sweep's trials into its status tallies
        assert status_counts(session, [1]) == {1: {TrialState.COMPLETED: 4}}
        session.add(Metric(trial_id=1, name="acc", step=1, value_kind=FloatKind.FINITE))
        with pytest.raises(IntegrityError):  # metrics are still unique per trial, name, step
            session.flush()
    engine.dispose()
