"""The verdict: which family to pick, why and how sure, from the leaderboard, its ties and the
families' lr basins; the report lists the families in the leaderboard's order."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from optisweep.service.sweeps.models import Sweep
from optisweep.service.sweeps.report import optimizer_report
from optisweep.service.sweeps.schemas import SweepCreate
from optisweep.service.sweeps.service import submit_sweep
from optisweep.service.trials.models import Trial, TrialState

LRS = [0.1, 0.01, 0.001]


def _sweep(session: Session, values: dict[str, list[float | None]]) -> Sweep:
    """A finished grid sweep whose trials ended at these val_accuracy values (by lr, as LRS;
    None: diverged)."""
    spec: dict[str, Any] = {
        "name": "verdict",
        "workload": {"name": "mlp-digits", "epochs": 2},
        "space": {"optimizers": list(values), "lr": {"values": LRS}},
        "search": {"algorithm": "grid"},
    }
    sweep = submit_sweep(session, SweepCreate.model_validate(spec), max_trials=100)
    for trial in session.scalars(select(Trial).where(Trial.sweep_id == sweep.id)):
        value = values[trial.optimizer][LRS.index(trial.hyperparameters["lr"])]
        trial.status = TrialState.COMPLETED if value is not None else TrialState.DIVERGED
        trial.epochs_run, trial.objective = 2, value if value is not None else float("nan")
    session.flush()
    return sweep


def test_the_verdict_picks_the_family_that_forgives_a_wrong_lr_among_close_ones(
    session: Session,
) -> None:
    sweep = _sweep(
        session,
        {
            "adam": [0.990, 0.985, 0.982],  # all three lrs within 2%: a 2-decade basin
            "adamax": [0.992, 0.90, 0.80],  # first by a hair, at one lr only
            "sgd": [None, 0.95, 0.70],  # diverged at lr 0.1
        },
    )
    report = optimizer_report(session, sweep)
    assert [f.optimizer for f in report.families] == ["adamax", "adam", "sgd"]
    assert report.verdict == (
        "Pick adam: it is within 2% of the leader adamax on val_accuracy (last epoch) (0.99 "
        "against 0.992), and its good-lr range is the widest (2.0 decades; adamax 0.0). "
        "From single seeds: search.repeats >= 2 would test how sure this is."
    )


def test_a_clear_leader_is_picked_and_its_divergence_said(session: Session) -> None:
    sweep = _sweep(session, {"sgd": [None, 0.95, 0.94], "adam": [0.80, 0.85, 0.70]})
    verdict = optimizer_report(session, sweep).verdict
    assert verdict.startswith(
        "Pick sgd: best val_accuracy (last epoch) 0.95, ahead of adam (0.85); "
        "its good-lr range spans 1.0 decades; it diverged at lr 0.1."
    )


def test_no_finished_trial_no_pick(session: Session) -> None:
    sweep = _sweep(session, {"sgd": [None, None, None]})
    assert optimizer_report(session, sweep).verdict == (
        "No family has a trial with a finite val_accuracy (last epoch) yet."
    )
