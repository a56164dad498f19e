"""The defaults-first stage: every family at its published defaults before the searcher's
trials, under every algorithm and with repeats, kept across a restart, and the report's gain
from tuning."""

from __future__ import annotations

import inspect
import itertools
import math
import statistics
from collections import defaultdict
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from optisweep.optimizers import OPTIMIZERS, get_spec
from optisweep.service.controller.loop import Controller
from optisweep.service.db.session import make_sessionmaker
from optisweep.service.search import (
    SEARCHERS,
    AdaptiveSearcher,
    DefaultsFirst,
    StoredTrial,
    make_searcher,
    sweep_searcher,
)
from optisweep.service.sweeps.repository import create_sweep, default_project_id
from optisweep.service.sweeps.schemas import Space, SweepCreate
from optisweep.service.trials.models import Trial, TrialState
from tests.optimizers.helpers import reference_class
from tests.service.conftest import LiveAPI

FAMILIES = ["adam", "sgd", "momentum"]
SPACE = {
    "optimizers": FAMILIES,
    "lr": {"values": [1e-4, 3e-3]},
    "beta1": {"values": [0.8, 0.95]},
    "batch_size": {"values": [16, 32]},
}


def _sweep(algorithm: str, **search: Any) -> SweepCreate:
    counted = {} if algorithm == "grid" else {"num_trials": 4}
    return SweepCreate.model_validate(
        {
            "name": f"defaults-{algorithm}",
            "workload": {"name": "mlp-digits", "epochs": 1},
            "space": SPACE,
            "search": {"algorithm": algorithm, "defaults_first": True, **counted, **search},
        }
    )


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_family_has_its_references_default_lr(name: str) -> None:
    spec = get_spec(name)
    torch_default = inspect.signature(reference_class(name)).parameters["lr"].default
    assert spec.defaults()["lr"] == torch_default


@pytest.mark.parametrize("algorithm", sorted(SEARCHERS))
def test_each_family_runs_at_its_defaults_before_the_searchers_configurations(
    algorithm: str,
) -> None:
    searcher = make_searcher(_sweep(algorithm), max_trials=1000)
    suggestions = list(itertools.islice(iter(searcher.suggest, None), 40))  # adaptive: asks on
    first, searched = suggestions[: len(FAMILIES)], suggestions[len(FAMILIES) :]
    assert [s.optimizer for s in first] == FAMILIES
    for suggestion in first:
        assert suggestion.defaults
        assert suggestion.hyperparameters == get_spec(suggestion.optimizer).defaults()
        assert suggestion.settings == {}  # the workload's batch size: not searched
    assert searched, "the searcher's configurations follow"
    assert not any(s.defaults for s in searched)
    if algorithm == "random":
        assert len(searched) == 4  # the defaults come beyond num_trials


def test_with_repeats_each_familys_defaults_run_once_per_repeat() -> None:
    searcher = sweep_searcher(_sweep("tpe", repeats=2), max_trials=1000, concurrency=lambda: 100)
    first = [searcher.suggest() for _ in range(2 * len(FAMILIES))]
    assert [s.optimizer for s in first if s is not None] == [f for f in FAMILIES for _ in range(2)]
    assert all(s is not None and s.defaults for s in first)
    following = searcher.suggest()
    assert following is not None
    assert not following.defaults


def _tpe() -> AdaptiveSearcher:
    space = Space.model_validate({"optimizers": FAMILIES, "lr": {"low": 1e-4, "high": 1e-1}})
    return AdaptiveSearcher(space, algorithm="tpe", seed=0, mode="min")


def test_the_searcher_hears_only_of_its_own_configurations_renumbered() -> None:
    inner = _tpe()
    searcher = DefaultsFirst(inner, optimizers=FAMILIES)
    for _ in range(len(FAMILIES) + 1):
        searcher.suggest()
    for number in range(len(FAMILIES)):
        searcher.on_complete(number, "completed", 1.0)
    assert inner.told == 0
    searcher.on_complete(len(FAMILIES), "completed", 0.5)  # the searcher's configuration 0
    assert inner.told == 1


@pytest.mark.parametrize("stored_defaults", [1, len(FAMILIES)])
def test_a_restored_stage_neither_reruns_nor_forgets_its_defaults(stored_defaults: int) -> None:
    original = DefaultsFirst(_tpe(), optimizers=FAMILIES)
    drawn = [original.suggest() for _ in range(stored_defaults)]
    if stored_defaults == len(FAMILIES):
        drawn += [original.suggest(), original.suggest()]
    stored = [
        StoredTrial(n, s.search_params or {}, "completed" if n < len(drawn) - 1 else None, 1.0)
        for n, s in enumerate(drawn)
        if s is not None
    ]
    inner = _tpe()
    restored = DefaultsFirst(inner, optimizers=FAMILIES)
    restored.restore(stored)
    following = restored.suggest()
    assert following is not None
    if stored_defaults < len(FAMILIES):
        assert following.defaults  # the defaults not yet run come next
        assert following.optimizer == FAMILIES[stored_defaults]
        assert inner.told == 0
    else:
        assert not following.defaults
        assert inner.told == 1  # its first configuration ended; the second is in flight


RESTART_SPEC = {
    "name": "defaults-restart",
    "workload": {"name": "rosenbrock", "epochs": 2, "steps_per_epoch": 10},
    "space": {"optimizers": ["adam", "sgd"], "lr": {"low": 1e-4, "high": 1e-2, "log": True}},
    "search": {
        "algorithm": "tpe",
        "num_trials": 4,
        "seed": 1,
        "concurrency": 1,
        "defaults_first": True,
    },
    "objective": {"metric": "val_loss", "mode": "min"},
    "resources": {"pack": False},
}
ENDED = (TrialState.COMPLETED, TrialState.DIVERGED, TrialState.STOPPED, TrialState.FAILED)


class _InterruptError(Exception):
    pass


@pytest.mark.usefixtures("ray_local")
def test_a_restarted_controller_keeps_the_defaults_stage(migrated_engine: Engine) -> None:
    sessions = make_sessionmaker(migrated_engine)
    owner = "defaults-restart-test"
    with sessions.begin() as session:
        sweep_id = create_sweep(
            session,
            spec=SweepCreate.model_validate(RESTART_SPEC),
            num_trials=6,
            claimed_by=owner,
            project_id=default_project_id(session),
        ).id

    def ended() -> int:
        with sessions() as session:
            statement = select(func.count()).where(
                Trial.sweep_id == sweep_id, Trial.status.in_(ENDED)
            )
            return session.scalar(statement) or 0

    def interrupt_after_three() -> None:
        if ended() >= 3:
            raise _InterruptError

    first = Controller(sessions, max_trials=100, controller_id=owner, sweep_id=sweep_id)
    with pytest.raises(_InterruptError):
        first.run_sweep(sweep_id, on_tick=interrupt_after_three)
    done = ended()
    assert 3 <= done < 6

    second = Controller(sessions, max_trials=100, controller_id=owner, sweep_id=sweep_id)
    second.run_sweep(sweep_id)
    with sessions() as session:
        trials = sorted(
            session.scalars(select(Trial).where(Trial.sweep_id == sweep_id)),
            key=lambda t: t.number,
        )
    assert [t.number for t in trials] == list(range(6))
    assert all(t.status in ENDED for t in trials)
    assert [t.defaults for t in trials] == [True, True, False, False, False, False]
    assert [t.optimizer for t in trials[:2]] == ["adam", "sgd"]
    for trial in trials[:2]:
        assert trial.hyperparameters == get_spec(trial.optimizer).defaults()


def _e2e_spec(algorithm: str, repeats: int) -> dict[str, Any]:
    search: dict[str, Any] = {"algorithm": algorithm, "seed": 2, "repeats": repeats}
    if algorithm != "grid":
        search["num_trials"] = 4
    return {
        "name": f"defaults-first-{algorithm}",
        "workload": {"name": "rosenbrock", "epochs": 2, "steps_per_epoch": 10},
        "space": {
            "optimizers": FAMILIES,
            "lr": {"values": [1e-4, 3e-3]}
            if algorithm == "grid"
            else {"low": 1e-4, "high": 1e-2, "log": True},
        },
        "search": {**search, "defaults_first": True},
        "objective": {"metric": "val_loss", "mode": "min"},
    }


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("algorithm", "repeats"), [("grid", 1), ("random", 2), ("tpe", 1)])
def test_defaults_trials_run_first_and_the_report_states_the_gain(
    live_api: LiveAPI, algorithm: str, repeats: int
) -> None:
    searched = 2 * len(FAMILIES) if algorithm == "grid" else 4
    defaults = len(FAMILIES) * repeats
    created = live_api.submit(_e2e_spec(algorithm, repeats))
    assert created["num_trials"] == defaults + searched * repeats
    sweep = live_api.wait(created["id"])
    assert sweep["status"] == "completed", sweep
    trials = live_api.trials(sweep["id"], sort="number", order="asc")
    assert [t["number"] for t in trials] == list(range(created["num_trials"]))
    assert [t["defaults"] for t in trials] == [True] * defaults + [False] * (searched * repeats)
    for trial in trials[:defaults]:
        assert trial["hyperparameters"] == get_spec(trial["optimizer"]).defaults()
        assert trial["settings"] is None
    assert [t["optimizer"] for t in trials[:defaults]] == [
        f for f in FAMILIES for _ in range(repeats)
    ]

    configurations: dict[tuple[str, bool], dict[int, list[float]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for trial in trials:
        if trial["status"] in ("completed", "stopped") and math.isfinite(trial["objective"]):
            key = (trial["optimizer"], trial["defaults"])
            configurations[key][trial["number"] // repeats].append(trial["objective"])
    report = live_api.client.get(f"/sweeps/{sweep['id']}/report").json()
    for family in report["families"]:
        name = family["optimizer"]
        default = statistics.fmean(next(iter(configurations[(name, True)].values())))
        assert family["default_objective"] == pytest.approx(default)
        assert family["default_lr"] == get_spec(name).defaults()["lr"]
        tuned = [statistics.fmean(v) for v in configurations[(name, False)].values()]
        if not tuned:  # random search may not draw every family
            assert family["tuning_gain"] is None
            assert "its defaults reached" in family["summary"]
            continue
        assert family["best_objective"] == pytest.approx(min(tuned))
        gain = default - min(tuned)  # val_loss: lower is better
        assert family["tuning_gain"] == pytest.approx(gain)
        assert family["tuning_gain_relative"] == pytest.approx(gain / abs(default))
        assert f"tuning gained {gain:+.3g} val_loss" in family["summary"]
        assert f"over its defaults ({default:.4g} at lr" in family["summary"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_without_the_stage_the_report_has_no_defaults(live_api: LiveAPI) -> None:
    spec = _e2e_spec("grid", 1)
    del spec["search"]["defaults_first"]
    sweep = live_api.wait(live_api.submit(spec)["id"])
    trials = live_api.trials(sweep["id"])
    assert len(trials) == 2 * len(FAMILIES)
    assert not any(t["defaults"] for t in trials)
    for family in live_api.client.get(f"/sweeps/{sweep['id']}/report").json()["families"]:
        assert family["default_objective"] is None
        assert family["tuning_gain"] is None
        assert "defaults" not in family["summary"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("search", "message"),
    [
        ({"defaults_first": "sometimes"}, "valid boolean"),
        ({"defaults_first": [True]}, "valid boolean"),
        (
            {"scheduler": {"name": "pbt", "interval": 1}, "defaults_first": True},
            "would not stay defaults",
        ),
    ],
)
def test_bad_defaults_first_is_422_naming_the_field(
    live_api: LiveAPI, search: dict[str, Any], message: str
) -> None:
    spec = _e2e_spec("random", 1)
    spec["search"].update(search)
    response = live_api.client.post("/sweeps", json=spec)
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert any(
        e["loc"][:3] == ["body", "search", "defaults_first"] and message in e["msg"] for e in errors
    ), errors
