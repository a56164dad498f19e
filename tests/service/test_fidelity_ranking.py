"""Fidelity-aware ranking: a family is ranked by its trials that ran every epoch where it has
any, and families whose trials were all stopped early come after, marked with their epoch."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from optisweep.service.sweeps.models import Sweep
from optisweep.service.sweeps.schemas import SweepCreate
from optisweep.service.sweeps.service import submit_sweep
from optisweep.service.sweeps.views import leaderboard_read
from optisweep.service.trials.models import Trial, TrialState

# (family, lr) -> how the trial ended: status, epochs run, final objective (val_accuracy, max)
ENDED = {
    ("adam", 0.1): (TrialState.COMPLETED, 3, 0.80),
    ("adam", 0.01): (TrialState.STOPPED, 1, 0.90),  # better, but after one epoch of three
    ("sgd", 0.1): (TrialState.STOPPED, 1, 0.95),
    ("sgd", 0.01): (TrialState.STOPPED, 2, 0.93),
    ("momentum", 0.1): (TrialState.COMPLETED, 3, 0.70),
    ("momentum", 0.01): (TrialState.DIVERGED, 1, None),
}


def _sweep(session: Session, repeats: int) -> Sweep:
    spec: dict[str, Any] = {
        "name": "fidelity",
        "workload": {"name": "mlp-digits", "epochs": 3},
        "space": {"optimizers": ["adam", "sgd", "momentum"], "lr": {"values": [0.1, 0.01]}},
        "search": {"algorithm": "grid", "repeats": repeats},
    }
    sweep = submit_sweep(session, SweepCreate.model_validate(spec), max_trials=100)
    for trial in session.scalars(select(Trial).where(Trial.sweep_id == sweep.id)):
        status, epochs, value = ENDED[(trial.optimizer, trial.hyperparameters["lr"])]
        trial.status, trial.epochs_run, trial.objective = status, epochs, value
    session.flush()
    return sweep


@pytest.mark.parametrize("repeats", [1, 2])
def test_stopped_trials_rank_after_full_length_ones(session: Session, repeats: int) -> None:
    board = leaderboard_read(session, _sweep(session, repeats), checkpoint_dir="/tmp")
    ranked = [
        (e.optimizer, e.trial.objective, e.trial.epochs_run, e.stopped_at) for e in board.entries
    ]
    assert ranked == [
        ("adam", 0.80, 3, None),  # its full-length trial, not its better one stopped at epoch 1
        ("momentum", 0.70, 3, None),  # below adam, above every family stopped early
        ("sgd", 0.95, 1, 1),  # all its trials stopped early: last, whatever its value
    ]
