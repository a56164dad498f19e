"""The sweep spec validates through the optimizer registry; grid and random searchers expand it."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from optisweep.optimizers import validate_hyperparameters
from optisweep.service.search import GridError, grid_size, make_searcher
from optisweep.service.sweeps.schemas import SweepCreate
from optisweep.service.sweeps.validation import check_sweep
from tests.conftest import REPO_ROOT, wait_until

EXAMPLE: dict[str, Any] = {
    "name": "digits-optimizers",
    "workload": {"name": "mlp-digits", "epochs": 20, "batch_size": 64},
    "space": {
        "optimizers": ["sgd", "momentum", "adagrad", "adadelta", "rmsprop", "adam", "adamax"],
        "lr": {"low": 1e-4, "high": 1e-1, "log": True},
        "beta1": {"low": 0.8, "high": 0.99},
        "beta2": {"low": 0.9, "high": 0.9999},
    },
    "search": {"algorithm": "random", "num_trials": 64, "seed": 0},
    "objective": {"metric": "val_accuracy", "mode": "max"},
    "resources": {"cpus_per_trial": 1, "gpus_per_trial": 0},
}


def _spec(**changes: Any) -> dict[str, Any]:
    spec = copy.deepcopy(EXAMPLE)
    for path, value in changes.items():
        target = spec
        *parents, last = path.split("__")
        for part in parents:
            target = target[part]
        target[last] = value
    return spec


def test_random_search_maps_betas_onto_each_family_and_is_reproducible() -> None:
    sweep = SweepCreate.model_validate(EXAMPLE)
    first = list(iter(make_searcher(sweep, max_trials=10_000).suggest, None))
    again = list(iter(make_searcher(sweep, max_trials=10_000).suggest, None))
    assert first == again
    assert len(first) == 64
    assert {s.optimizer for s in first} == set(EXAMPLE["space"]["optimizers"])
    for suggestion in first:
        hp = suggestion.hyperparameters
        validate_hyperparameters(suggestion.optimizer, hp)  # full and valid for its family
        assert 1e-4 <= hp["lr"] <= 1e-1
        if suggestion.optimizer in ("adam", "adamax"):
            assert 0.8 <= hp["betas"][0] <= 0.99
            assert 0.9 <= hp["betas"][1] <= 0.9999
        if suggestion.optimizer == "momentum":
            assert 0.8 <= hp["momentum"] <= 0.99
        if suggestion.optimizer == "rmsprop":
            assert 0.9 <= hp["alpha"] <= 0.9999
        if suggestion.optimizer == "adadelta":
            assert 0.9 <= hp["rho"] <= 0.9999
        if suggestion.optimizer == "sgd":
            assert set(hp) == {"lr", "weight_decay"}
    log_lrs = sorted(math.log10(s.hyperparameters["lr"]) for s in first)
    assert log_lrs[len(log_lrs) // 2] < -1.8  # log-uniform: the median is near 1e-2.5


def test_grid_search_enumerates_only_the_axes_each_family_has() -> None:
    spec = _spec(
        search={"algorithm": "grid"},
        space={
            "optimizers": ["sgd", "momentum", "adam"],
            "lr": {"values": [0.1, 0.01]},
            "beta1": {"values": [0.8, 0.9]},
            "beta2": {"values": [0.99, 0.999, 0.9999]},
            "overrides": {"momentum": {"nesterov": {"values": [True, False]}}},
        },
    )
    sweep = SweepCreate.model_validate(spec)
    # sgd: 2 lr; momentum: 2 lr x 2 beta1 x 2 nesterov; adam: 2 lr x 2 x 3
    assert grid_size(sweep.space) == 2 + 8 + 12
    points = list(iter(make_searcher(sweep, max_trials=100).suggest, None))
    assert len(points) == 22
    assert len({(p.optimizer, str(sorted(p.hyperparameters.items()))) for p in points}) == 22


def test_grid_larger_than_the_maximum_is_rejected_naming_it() -> None:
    spec = _spec(
        search={"algorithm": "grid"},
        space={
            "optimizers": ["adam"],
            "lr": {"values": list(range(1, 101))},
            "beta2": {"values": [0.9, 0.99]},
        },
    )
    with pytest.raises(GridError, match="the grid has 200 trials, more than the maximum of 100"):
        make_searcher(SweepCreate.model_validate(spec), max_trials=100)


def test_grid_needs_values_not_ranges() -> None:
    sweep = SweepCreate.model_validate(_spec(search={"algorithm": "grid"}))
    with pytest.raises(GridError, match=r"grid search needs .*space.lr"):
        make_searcher(sweep, max_trials=100)


@pytest.mark.parametrize(
    ("changes", "field", "text"),
    [
        ({"space__optimizers": ["adam", "sophia"]}, "optimizers", "unknown optimizer 'sophia'"),
        ({"space__lr": {"low": 0.0, "high": 0.1}}, "lr", "lr must be finite and > 0, got 0.0"),
        ({"space__lr": {"low": -1, "high": 0.1}}, "lr", "got -1.0"),
        ({"space__beta1": {"low": 0.5, "high": 1.2}}, "beta1", "must be in [0, 1), got 1.2"),
        ({"space__beta2": {"values": [0.9, 1.0]}}, "beta2", "must be in [0, 1), got 1.0"),
        ({"space__lr": {"low": 0.1, "high": 0.01}}, "lr", "low must be <= high"),
        ({"space__beta1": {"low": 0.0, "high": 0.5, "log": True}}, "beta1", "needs low > 0"),
        ({"workload__epochs": 0}, "epochs", "greater than or equal to 1"),
        ({"workload__batch_size": 10**9}, "batch_size", "less than or equal to 65536"),
        ({"search__num_trials": None}, "search", "num_trials is required"),
        ({"space__overrides": {"adam": {"amsgrad": "maybe"}}}, "overrides", "amsgrad"),
        ({"space__overrides": {"sgd": {"momentum": 0.9}}}, "overrides", "unknown hyperparameter"),
        ({"space__overrides": {"adamw": {"eps": 1e-8}}}, "overrides", "not one of the sweep"),
    ],
)
def test_bad_specs_name_the_field(changes: dict[str, Any], field: str, text: str) -> None:
    with pytest.raises(ValidationError) as info:
        SweepCreate.model_validate(_spec(**changes))
    rendered = str(info.value)
    assert field in rendered
    assert text in rendered


def test_pack_size_spreads_a_built_in_workloads_trials_over_slots_without_a_probe() -> None:
    from optisweep.service.controller.packing import PackingPolicy

    spec = SweepCreate.model_validate(
        {
            "name": "packing",
            "workload": {"name": "mlp-digits", "epochs": 1},
            "space": {"optimizers": ["adam", "sgd"], "lr": {"values": [0.1]}},
            "search": {"algorithm": "grid"},
        }
    )
    policy = PackingPolicy(pack_memory_mb=1.0)  # a worker splits what does not fit
    assert policy.pack_size(spec, 64, total_cpus=2, total_gpus=0) == 32  # no Ray call needed
    assert policy.pack_size(spec, 7, total_cpus=2, total_gpus=0) == 4
    assert policy.pack_size(spec, 500, total_cpus=2, total_gpus=0) == 64  # max_pack_size
    assert not policy.probes
    assert policy.member_bytes(spec) is None  # its packs measure it where they need it
    unpacked = spec.model_copy(
        update={"resources": spec.resources.model_copy(update={"pack": False})}
    )
    assert policy.pack_size(unpacked, 64, total_cpus=2, total_gpus=0) == 1


@pytest.mark.usefixtures("ray_local")
def test_a_users_workload_is_packed_once_a_worker_found_that_it_packs() -> None:
    from optisweep.service.controller.packing import PackingPolicy
    from optisweep.workers.memory import member_memory_bytes

    spec = SweepCreate.model_validate(
        {
            "name": "packing",
            "workload": {"entrypoint": "tests.workers.plugin_workload:TINY_PACKABLE", "epochs": 1},
            "space": {"optimizers": ["adam", "sgd"], "lr": {"values": [0.1]}},
            "search": {"algorithm": "grid"},
        }
    )
    policy = PackingPolicy(pack_memory_mb=2048)
    first = wait_until(
        lambda: policy.pack_size(spec, 64, total_cpus=2, total_gpus=0),
        timeout=60,
        what="a worker to inspect the workload",
    )
    assert first == 32
    (probe,) = policy.probes.values()  # measured by a Ray worker, not in this process
    member_bytes = member_memory_bytes(spec.workload.config(), ["adam", "sgd"])
    assert (probe.packable, probe.member_bytes) == (True, member_bytes)
    assert policy.member_bytes(spec) == member_bytes  # sent with its packs: no probe there


@pytest.mark.parametrize(
    "path", sorted((REPO_ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name
)
def test_every_example_is_a_valid_sweep(path: Path) -> None:
    spec = SweepCreate.model_validate(yaml.safe_load(path.read_text()))
    assert spec.name == path.stem
    checked = check_sweep(spec, max_trials=10_000, require_worker=False, local_code=True)
    assert checked.num_trials >= 1


def test_the_packing_note_says_what_packing_will_not_do() -> None:
    from optisweep.service.sweeps.validation import packing_note
    from optisweep.workers.specs import PackProbe, WorkloadReport

    spec = SweepCreate.model_validate(
        {
            "name": "note",
            "workload": {"entrypoint": "mylab.models:net", "epochs": 1},
            "space": {"optimizers": ["sgd"], "lr": {"values": [0.1]}},
            "search": {"algorithm": "grid"},
        }
    )

    def note(probe: PackProbe, *, pack: bool = True) -> str | None:
        resources = spec.resources.model_copy(update={"pack": pack})
        return packing_note(
            spec.model_copy(update={"resources": resources}), WorkloadReport(probe=probe)
        )

    assert note(PackProbe(True, 1)) is None
    vmapped = PackProbe(True, 1, not_fused="the fused pass differs from vmap's on this model")
    assert note(vmapped) == (
        "packs run under vmap, not fused: the fused pass differs from vmap's on this model"
    )
    stuck = PackProbe(False, 0, reason="a stacked step failed (boom)")
    assert note(stuck) == "trials run one per task: a stacked step failed (boom)"
    assert note(stuck, pack=False) is None
