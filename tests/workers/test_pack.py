"""A trial trained in a pack gives the per-epoch metrics of the same trial trained alone."""

from __future__ import annotations

import math
import time
from typing import Any

import pytest

from optisweep.optimizers import OPTIMIZERS
from optisweep.workers.memory import (
    DEVICE_MEMORY_FRACTION,
    PeakMemory,
    member_memory_bytes,
    split_for_memory,
)
from optisweep.workers.specs import MemberSpec, PackSpec, TrialResult
from optisweep.workers.train import member_seconds, train_pack, train_trial
from optisweep.workers.workloads import TIME_METRIC, WORKLOADS
from tests.workers.helpers import without_time

DATA_SEED = 11

# One member per family, each with its own seed, and a schedule or clipping on several.
MIXED: list[dict[str, Any]] = [
    {"optimizer": "sgd", "hyperparameters": {"lr": 0.05, "weight_decay": 1e-4}, "seed": 1},
    {
        "optimizer": "momentum",
        "hyperparameters": {"lr": 0.02, "nesterov": True},
        "seed": 2,
        "schedule": {"kind": "step", "step_size": 1, "gamma": 0.5},
    },
    {"optimizer": "adagrad", "hyperparameters": {"lr": 0.05}, "seed": 3, "clip_norm": 0.5},
    {"optimizer": "adadelta", "hyperparameters": {"lr": 1.0, "rho": 0.95}, "seed": 4},
    {
        "optimizer": "rmsprop",
        "hyperparameters": {"lr": 1e-3, "centered": True, "momentum": 0.5},
        "seed": 5,
        "schedule": {"kind": "cosine", "t_max": 3, "min_factor": 0.1},
    },
    {
        "optimizer": "adam",
        "hyperparameters": {"lr": 3e-3, "betas": (0.85, 0.99), "amsgrad": True},
        "seed": 6,
        "clip_norm": 1.0,
    },
    {
        "optimizer": "adamw",
        "hyperparameters": {"lr": 3e-3},
        "seed": 7,
        "schedule": {"kind": "warmup", "start_factor": 0.2, "total_iters": 2},
    },
    {
        "optimizer": "adamax",
        "hyperparameters": {"lr": 2e-3},
        "seed": 8,
        "schedule": {"kind": "exponential", "gamma": 0.7},
    },
    {"optimizer": "nadam", "hyperparameters": {"lr": 2e-3}, "seed": 9, "clip_norm": 2.0},
    {"optimizer": "adam", "hyperparameters": {"lr": 1e-3}, "seed": 10},
    {
        "optimizer": "radam",
        "hyperparameters": {"lr": 3e-3, "weight_decay": 1e-3, "decoupled_weight_decay": True},
        "seed": 11,
    },
    {
        "optimizer": "lion",
        "hyperparameters": {"lr": 3e-4, "weight_decay": 0.1},
        "seed": 12,
        "clip_norm": 1.0,
    },
    {"optimizer": "adafactor", "hyperparameters": {"lr": 1e-2, "weight_decay": 1e-2}, "seed": 13},
    {"optimizer": "muon", "hyperparameters": {"lr": 2e-2, "adamw_lr": 3e-3}, "seed": 14},
    {
        "optimizer": "schedulefree_adamw",
        "hyperparameters": {"lr": 3e-3, "warmup_steps": 5, "weight_decay": 1e-3},
        "seed": 15,
    },
    {"optimizer": "schedulefree_sgd", "hyperparameters": {"lr": 0.05}, "seed": 16},
    {
        "optimizer": "prodigy",
        "hyperparameters": {"lr": 1.0, "weight_decay": 1e-2, "d_coef": 0.5},
        "seed": 17,
        "schedule": {"kind": "cosine", "min_factor": 0.1},
    },
]


SMALL: dict[str, dict[str, Any]] = {
    "char-lm": {"train_sequences": 64, "val_sequences": 16, "d_model": 32, "context": 32},
}
"""Smaller settings for workloads whose defaults take long in float64 on a CPU."""


def test_the_mixed_pack_covers_every_family() -> None:
    assert {member["optimizer"] for member in MIXED} == set(OPTIMIZERS)


def _alone(
    workload: dict[str, Any], member: dict[str, Any], *, device: str = "cpu"
) -> tuple[list[dict[str, float]], TrialResult]:
    curve: list[dict[str, float]] = []
    spec = PackSpec.single(workload=workload, data_seed=DATA_SEED, device=device, **member)
    result = train_trial(spec, report=lambda epoch, metrics: curve.append(metrics))
    return curve, result


def _packed(
    workload: dict[str, Any],
    members: list[dict[str, Any]],
    stop_at: dict[int, int] | None = None,
    *,
    device: str = "cpu",
    free_memory: int | None = None,
    memory_mb: float | None = None,
    reported: list[set[int]] | None = None,
) -> tuple[list[list[dict[str, float]]], list[TrialResult]]:
    """Train ``members`` as a pack; their curves, results, and (in ``reported``) which members
    each report call covered."""
    curves: list[list[dict[str, float]]] = [[] for _ in members]

    def report(epoch: int, metrics: dict[int, dict[str, float]]) -> set[int]:
        if reported is not None:
            reported.append(set(metrics))
        for k, values in metrics.items():
            assert len(curves[k]) == epoch - 1  # every epoch, once, in order
            curves[k].append(values)
        return {k for k, at in (stop_at or {}).items() if at == epoch}

    spec = PackSpec(
        workload=workload,
        members=[MemberSpec(**member) for member in members],
        data_seed=DATA_SEED,
        device=device,
        memory_mb=memory_mb,
    )
    return curves, train_pack(spec, report=report, free_memory=free_memory)


def _max_relative_difference(a: list[dict[str, float]], b: list[dict[str, float]]) -> float:
    """The largest relative difference of two curves' metrics; time_seconds aside, as two runs
    take their own time."""
    assert len(a) == len(b)
    worst = 0.0
    for left, right in zip(a, b, strict=True):
        assert left.keys() == right.keys()
        for name in left.keys() - {TIME_METRIC}:
            x, y = left[name], right[name]
            if not (math.isfinite(x) and math.isfinite(y)):
                assert math.isnan(x) == math.isnan(y)
                assert math.isnan(x) or x == y
                continue
            worst = max(worst, abs(x - y) / max(abs(y), 1e-12))
    return worst


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize("workload", ["quadratic", "rosenbrock"])
def test_float64_pack_matches_every_family_alone(workload: str) -> None:
    config = {"name": workload, "epochs": 3, "steps_per_epoch": 20}
    members = [
        {**m, "hyperparameters": {**m["hyperparameters"], "lr": m["hyperparameters"]["lr"] / 10}}
        for m in MIXED
    ]
    curves, results = _packed(config, members)
    for member, curve, result in zip(members, curves, results, strict=True):
        alone_curve, alone_result = _alone(config, member)
        assert (result.status, result.epochs_run) == (alone_result.status, alone_result.epochs_run)
        assert _max_relative_difference(curve, alone_curve) <= 1e-9, member


def test_float32_mlp_digits_pack_matches_every_family_alone() -> None:
    config = {"name": "mlp-digits", "epochs": 3, "batch_size": 64}
    curves, results = _packed(config, MIXED)
    for member, curve, result in zip(MIXED, curves, results, strict=True):
        assert result.status == "completed", member
        assert curve[-1]["val_accuracy"] > 0.1
        # Muon orthogonalises in bfloat16: a batched product may round an element apart
        # from the one-matrix product alone (tests/optimizers/helpers.py: MUON_TOLERANCE)
        tolerance = 1e-3 if member["optimizer"] == "muon" else 1e-4
        assert _max_relative_difference(curve, _alone(config, member)[0]) <= tolerance, member


@pytest.mark.usefixtures("float64")
def test_members_stopping_and_diverging_at_different_epochs_leave_the_rest_exact() -> None:
    config = {"name": "rosenbrock", "epochs": 5, "steps_per_epoch": 20}
    members = [
        {"optimizer": "adam", "hyperparameters": {"lr": 1e-3}, "seed": 1},
        {"optimizer": "sgd", "hyperparameters": {"lr": 0.5}, "seed": 2},  # diverges in epoch 1
        {"optimizer": "momentum", "hyperparameters": {"lr": 1e-5}, "seed": 3},
        {"optimizer": "rmsprop", "hyperparameters": {"lr": 1e-3}, "seed": 4},
        {"optimizer": "adagrad", "hyperparameters": {"lr": 1e-2}, "seed": 5},
    ]
    curves, results = _packed(config, members, stop_at={2: 2, 3: 3})
    statuses = [(r.status, r.epochs_run) for r in results]
    assert statuses == [
        ("completed", 5),
        ("diverged", 1),
        ("stopped", 2),
        ("stopped", 3),
        ("completed", 5),
    ]
    for member, curve, result in zip(members, curves, results, strict=True):
        assert len(curve) == result.epochs_run
        alone = _alone(config, member)[0][: result.epochs_run]
        assert _max_relative_difference(curve, alone) <= 1e-9, member
        assert result.metrics == curve[-1]


def test_a_member_is_charged_an_equal_share_of_the_pack_epoch() -> None:
    assert member_seconds(1.5, 3) == pytest.approx(0.5)
    assert member_seconds(0.25, 1) == 0.25


def test_a_pack_epochs_time_is_shared_by_the_members_that_trained_in_it() -> None:
    """Within an epoch every training member's time grows by the same share; the shares add
    up to no more than the time between two reports, and to most of it in the last epoch
    (the others also stop a member and compact the pack, or set it up)."""
    config = {"name": "mlp-digits", "epochs": 3, "batch_size": 64}
    times: list[dict[int, float]] = []
    reported_at = [time.perf_counter()]

    def report(epoch: int, metrics: dict[int, dict[str, float]]) -> set[int]:
        reported_at.append(time.perf_counter())
        times.append({k: values["time_seconds"] for k, values in metrics.items()})
        return {2} if epoch == 1 else set()  # member 2 trains in epoch 1 only

    spec = PackSpec(
        workload=config,
        members=[MemberSpec(**member) for member in MIXED[:3]],
        data_seed=DATA_SEED,
        device="cpu",
    )
    results = train_pack(spec, report=report)
    assert [r.status for r in results] == ["completed", "completed", "stopped"]
    assert [sorted(epoch) for epoch in times] == [[0, 1, 2], [0, 1], [0, 1]]
    for e, epoch_times in enumerate(times):
        before = times[e - 1] if e > 0 else {}
        shares = [seconds - before.get(k, 0.0) for k, seconds in epoch_times.items()]
        assert shares == pytest.approx([shares[0]] * len(shares), rel=1e-9)
        assert shares[0] > 0
        between_reports = reported_at[e + 1] - reported_at[e]
        assert sum(shares) <= between_reports
    assert sum(shares) >= 0.5 * between_reports


def test_a_workload_that_cannot_be_packed_is_refused(
    install_plugin: Any,
) -> None:
    install_plugin("tiny-regression", "tests.workers.plugin_workload:TINY_REGRESSION")
    spec = PackSpec(
        workload={"name": "tiny-regression", "epochs": 1},
        members=[MemberSpec(optimizer="sgd", hyperparameters={"lr": 0.1}, seed=0)],
        data_seed=0,
    )
    with pytest.raises(ValueError, match="'tiny-regression' cannot be packed"):
        train_pack(spec)


def _pack_peak(workload: dict[str, Any], members: list[dict[str, Any]]) -> int:
    with PeakMemory() as memory:
        _packed(workload, members)
    return memory.peak


@pytest.mark.parametrize(
    "workload",
    [
        {"name": "mlp-digits", "epochs": 1},
        {"name": "mlp-digits", "epochs": 1, "batch_size": "full"},
        {"name": "char-lm", "epochs": 1, **SMALL["char-lm"]},
    ],
    ids=["mlp", "mlp-full-batch", "char-lm"],
)
def test_the_memory_estimate_is_what_one_more_member_of_a_real_pack_costs(
    workload: dict[str, Any],
) -> None:
    adams = [{"optimizer": "adam", "hyperparameters": {"lr": 1e-3}, "seed": s} for s in range(6)]
    slope = (_pack_peak(workload, adams) - _pack_peak(workload, adams[:2])) / 4
    estimate = member_memory_bytes(workload, ["sgd", "adam"])
    assert 0.85 <= estimate / slope <= 1.25, (estimate, slope)


def test_the_memory_estimate_grows_with_the_optimizer_state_and_the_model() -> None:
    mlp = {"name": "mlp-digits", "epochs": 1}
    params = 64 * 128 + 128 + 128 * 10 + 10
    sgd, adam = member_memory_bytes(mlp, ["sgd"]), member_memory_bytes(mlp, ["sgd", "adam"])
    assert adam - sgd >= params * 4 * 2  # Adam's two moments, float32
    lm = {"name": "char-lm", "epochs": 1, **SMALL["char-lm"]}
    wider = member_memory_bytes({**lm, "d_model": 64}, ["sgd"])
    assert wider > member_memory_bytes(lm, ["sgd"])


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_every_built_in_workload_packs_and_matches_alone(name: str) -> None:
    config = {"name": name, "epochs": 2, **SMALL.get(name, {})}
    # an lr at which plain SGD converges on every workload: the curves compared are all finite
    members = [{**MIXED[0], "hyperparameters": {"lr": 1e-3}}, MIXED[5]]
    curves, results = _packed(config, members)
    for member, curve, result in zip(members, curves, results, strict=True):
        alone_curve, alone_result = _alone(config, member)
        assert (result.status, result.epochs_run) == (alone_result.status, alone_result.epochs_run)
        assert _max_relative_difference(curve, alone_curve) <= 1e-9, (name, member)


GROUPED: list[dict[str, Any]] = [
    {"select": [{"module": "Embedding"}], "lr_multiplier": 0.5, "weight_decay": 0.0},
    {"select": ["bias", "norm"], "weight_decay": 0.0},
]
"""The char-lm's embeddings at half the lr, no decay on them, biases and norms."""


@pytest.mark.usefixtures("float64")
def test_a_pack_with_parameter_groups_matches_each_member_alone() -> None:
    config = {"name": "char-lm", "epochs": 2, **SMALL["char-lm"]}
    members = [
        {"optimizer": "adamw", "hyperparameters": {"lr": 3e-3, "weight_decay": 0.1}, "seed": 1},
        {"optimizer": "lion", "hyperparameters": {"lr": 3e-4, "weight_decay": 0.5}, "seed": 2},
        {"optimizer": "adafactor", "hyperparameters": {"lr": 1e-2}, "seed": 3},
        {"optimizer": "adamw", "hyperparameters": {"lr": 3e-3, "weight_decay": 0.1}, "seed": 1},
    ]
    members = [{**m, "param_groups": GROUPED if k < 3 else []} for k, m in enumerate(members)]
    curves, results = _packed(config, members)
    for member, curve, result in zip(members, curves, results, strict=True):
        alone_curve, alone_result = _alone(config, member)
        assert (result.status, alone_result.status) == ("completed", "completed")
        assert _max_relative_difference(curve, alone_curve) <= 1e-9, member
    # the same trial with and without groups trains differently
    assert curves[0][-1]["train_loss"] != curves[3][-1]["train_loss"]


@pytest.mark.parametrize(
    ("members", "free_mb", "sizes"),
    [(64, 10_000, [64]), (64, 100, [6] * 10 + [4]), (10, 60, [3, 3, 3, 1]), (5, 1, [1] * 5)],
)
def test_a_pack_is_split_to_fit_the_device_memory(
    members: int, free_mb: int, sizes: list[int]
) -> None:
    parts = split_for_memory(members, member_bytes=10 * 2**20, free_bytes=free_mb * 2**20)
    assert [len(part) for part in parts] == sizes
    assert [k for part in parts for k in part] == list(range(members))


def parts_budget(workload: dict[str, Any], members: list[dict[str, Any]], per_part: int) -> int:
    """A free-memory figure at which a pack of ``members`` splits into parts of ``per_part``."""
    member_bytes = member_memory_bytes(workload, [m["optimizer"] for m in members])
    return int(per_part * member_bytes / DEVICE_MEMORY_FRACTION) + 1


@pytest.mark.usefixtures("float64")
def test_a_pack_too_large_for_the_memory_trains_in_parts_with_the_same_results() -> None:
    config = {"name": "mlp-digits", "epochs": 2}
    members = MIXED[:5]
    reported: list[set[int]] = []
    budget = parts_budget(config, members, per_part=2)
    curves, results = _packed(config, members, free_memory=budget, reported=reported)
    assert reported == [{0, 1}, {0, 1}, {2, 3}, {2, 3}, {4}, {4}]  # part by part, epoch by epoch
    whole_reported: list[set[int]] = []
    whole_curves, whole_results = _packed(config, members, reported=whole_reported)
    assert whole_reported == [{0, 1, 2, 3, 4}] * 2
    assert [(r.status, r.epochs_run, without_time(r.metrics)) for r in results] == [
        (r.status, r.epochs_run, without_time(r.metrics)) for r in whole_results
    ]
    for curve, whole in zip(curves, whole_curves, strict=True):
        assert _max_relative_difference(curve, whole) <= 1e-9


def test_a_cpu_pack_over_the_servers_memory_budget_trains_in_parts() -> None:
    # On the CPU the server's pack_memory_mb travels with the pack, and all of it is usable.
    config = {"name": "mlp-digits", "epochs": 1}
    members = MIXED[:5]
    member_bytes = member_memory_bytes(config, [m["optimizer"] for m in members])
    reported: list[set[int]] = []
    _packed(config, members, memory_mb=3.5 * member_bytes / 2**20, reported=reported)
    assert reported == [{0, 1, 2}, {3, 4}]
    roomy: list[set[int]] = []
    _packed(config, members, memory_mb=100 * member_bytes / 2**20, reported=roomy)
    assert roomy == [{0, 1, 2, 3, 4}]
    # What the server's probe measured travels with the pack, which then trusts it.
    told: list[set[int]] = []
    spec = PackSpec(
        workload=config,
        members=[MemberSpec(**member) for member in members],
        data_seed=DATA_SEED,
        memory_mb=2.0,
        member_bytes=2**20,
    )

    def report(epoch: int, metrics: dict[int, dict[str, float]]) -> None:
        told.append(set(metrics))

    train_pack(spec, report=report)
    assert told == [{0, 1}, {2, 3}, {4}]
