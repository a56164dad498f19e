"""One validation path: check_sweep checks a sweep in full and expands it once; submitting
queues the sweep with its trials, so the controller only claims it."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from optisweep.service.errors import SpecError
from optisweep.service.sweeps.schemas import SweepCreate
from optisweep.service.sweeps.service import submit_sweep
from optisweep.service.sweeps.validation import check_sweep
from optisweep.service.trials.models import Trial, TrialState
from optisweep.service.trials.queue import INSERT_CHUNK


def _spec(**search: Any) -> SweepCreate:
    return SweepCreate.model_validate(
        {
            "name": "checked",
            "workload": {"name": "quadratic", "epochs": 2},
            "space": {"optimizers": ["sgd", "adam"], "lr": {"values": [0.1, 0.01, 0.001]}},
            "search": {"algorithm": "grid", **search},
            "objective": {"metric": "val_loss", "mode": "min"},
        }
    )


def test_a_random_sweep_is_drawn_the_same_again_and_written_in_chunks(
    session: Session,
) -> None:
    trials = INSERT_CHUNK + 7  # more than one statement's worth
    spec = SweepCreate.model_validate(
        {
            **_spec().model_dump(mode="json"),
            "space": {"optimizers": ["sgd", "adam"], "lr": {"low": 1e-4, "high": 0.1, "log": True}},
            "search": {"algorithm": "random", "num_trials": trials, "seed": 3},
        }
    )
    checked = check_sweep(spec, max_trials=trials)
    first, again = iter(checked.suggestions), iter(checked.suggestions)
    drawn = [next(first) for _ in range(3)]
    assert drawn == [next(again) for _ in range(3)]  # counted once, drawn again the same
    assert len(checked.suggestions) == checked.num_trials == trials
    sweep = submit_sweep(session, spec, max_trials=trials)
    rows = session.execute(
        select(Trial.number, Trial.hyperparameters)
        .where(Trial.sweep_id == sweep.id)
        .order_by(Trial.number)
    ).all()
    assert [number for number, _ in rows] == list(range(trials))
    assert [hyperparameters for _, hyperparameters in rows[:3]] == [
        s.hyperparameters for s in drawn
    ]


def test_submitting_a_grid_queues_the_sweep_with_every_trial(session: Session) -> None:
    spec = _spec(repeats=2)
    checked = check_sweep(spec, max_trials=100)
    assert checked.num_trials == len(checked.suggestions) == 2 * 3 * 2
    sweep = submit_sweep(session, spec, max_trials=100)
    rows = session.execute(
        select(Trial.number, Trial.optimizer, Trial.status).where(Trial.sweep_id == sweep.id)
    ).all()
    assert sweep.num_trials == len(rows) == 12
    assert sorted(number for number, _, _ in rows) == list(range(12))
    assert {status for _, _, status in rows} == {TrialState.PENDING}
    # the repeats of a configuration are consecutive
    by_number = {number: optimizer for number, optimizer, _ in rows}
    assert all(by_number[2 * i] == by_number[2 * i + 1] for i in range(6))


def test_an_adaptive_sweep_is_queued_without_trials_its_searcher_asks_later(
    session: Session,
) -> None:
    spec = SweepCreate.model_validate(
        {
            **_spec().model_dump(mode="json"),
            "space": {"optimizers": ["adam"], "lr": {"low": 1e-4, "high": 1e-1, "log": True}},
            "search": {"algorithm": "tpe", "num_trials": 5, "repeats": 2},
        }
    )
    sweep = submit_sweep(session, spec, max_trials=100)
    count = session.scalar(select(func.count()).where(Trial.sweep_id == sweep.id))
    assert (sweep.num_trials, count) == (10, 0)


@pytest.mark.parametrize(
    ("search", "max_trials", "field"),
    [
        ({"repeats": 3}, 10, "search.repeats"),
        ({}, 5, "space"),
    ],
)
def test_a_sweep_over_the_budget_names_its_field(
    search: dict[str, Any], max_trials: int, field: str
) -> None:
    with pytest.raises(SpecError) as refused:
        check_sweep(_spec(**search), max_trials=max_trials)
    assert refused.value.field == field


def test_a_users_workload_needs_a_worker_unless_told_otherwise() -> None:
    spec = SweepCreate.model_validate(
        {**_spec().model_dump(mode="json"), "workload": {"entrypoint": "mine:net", "epochs": 1}}
    )
    with pytest.raises(SpecError) as refused:
        check_sweep(spec, max_trials=100)
    assert refused.value.field == "workload.entrypoint"
    quick = check_sweep(spec, max_trials=100, require_worker=False)
    assert (quick.report, quick.num_trials) == (None, 6)


def test_lr_auto_over_the_budget_names_num_trials() -> None:
    spec = SweepCreate.model_validate(
        {
            **_spec().model_dump(mode="json"),
            "space": {"optimizers": ["adam"], "lr": "auto"},
            "search": {"algorithm": "random", "num_trials": 50},
        }
    )
    with pytest.raises(SpecError) as refused:
        check_sweep(spec, max_trials=20)
    assert refused.value.field == "search.num_trials"


def test_a_learning_rate_free_family_keeps_its_lr_and_lr_auto_needs_another() -> None:
    """Prodigy's lr multiplies the step size it estimates: the shared lr values leave it at
    its default 1 (one trial per d_coef, not one per shared lr); lr: auto range-tests only the
    families that take an lr, and with none of them it is a 422 on space.lr."""
    spec = _spec()
    space = {
        "optimizers": ["adam", "prodigy"],
        "lr": {"values": [0.1, 0.01, 0.001]},
        "overrides": {"prodigy": {"d_coef": {"values": [0.5, 2.0]}}},
    }
    spec = SweepCreate.model_validate({**spec.model_dump(mode="json"), "space": space})
    suggestions = check_sweep(spec, max_trials=100).suggestions
    prodigy = [s.hyperparameters for s in suggestions if s.optimizer == "prodigy"]
    assert sorted((h["lr"], h["d_coef"]) for h in prodigy) == [(1.0, 0.5), (1.0, 2.0)]
    assert sorted(s.hyperparameters["lr"] for s in suggestions if s.optimizer == "adam") == [
        0.001,
        0.01,
        0.1,
    ]
    assert spec.space.lr_tuned() == ["adam"]
    alone = {
        **spec.model_dump(mode="json"),
        "space": {"optimizers": ["prodigy"], "lr": "auto"},
        "search": {"algorithm": "random", "num_trials": 4},
    }
    with pytest.raises(SpecError) as refused:
        check_sweep(SweepCreate.model_validate(alone), max_trials=20)
    assert refused.value.field == "space.lr"
    assert "this sweep's (prodigy) estimate their own step size" in str(refused.value)
