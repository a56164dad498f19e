"""Learning-rate schedules in training loops: a warm-up in front of any kind, stepped per
optimizer step or per epoch, with lengths left to the run; packed equals alone, and a trial
resumed in the middle of its warm-up goes on as if it had never stopped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from optisweep.optimizers import CosineSchedule, StepSchedule
from optisweep.workers.runtime import run_schedule
from tests.workers.test_checkpoint import _from, _pack_spec, _round_trip, _run_alone, _run_pack
from tests.workers.test_checkpoint import _trial_spec as _checkpoint_trial_spec
from tests.workers.test_pack import _alone, _max_relative_difference, _packed

EPOCHS = 3
WORKLOAD = {"name": "mlp-digits", "epochs": EPOCHS, "batch_size": 256}
STEPS = 6
"""Optimizer steps per epoch: ceil(1437 training examples / 256)."""

# Every kind with a per-step warm-up longer than an epoch, lengths left to the run on some;
# one per-epoch schedule with a warm-up beside them, and clipping on two.
MEMBERS: list[dict[str, Any]] = [
    {
        "optimizer": "sgd",
        "hyperparameters": {"lr": 0.2},
        "seed": 1,
        "schedule": {"kind": "cosine", "warmup": 8, "per": "step", "min_factor": 0.1},
    },
    {
        "optimizer": "momentum",
        "hyperparameters": {"lr": 0.05, "momentum": 0.9},
        "seed": 2,
        "schedule": {"kind": "step", "warmup": 8, "per": "step", "gamma": 0.5},
        "clip_norm": 0.5,
    },
    {
        "optimizer": "adam",
        "hyperparameters": {"lr": 0.01},
        "seed": 3,
        "schedule": {"kind": "exponential", "warmup": 8, "per": "step", "gamma": 0.9},
    },
    {
        "optimizer": "rmsprop",
        "hyperparameters": {"lr": 0.003},
        "seed": 4,
        "schedule": {"kind": "constant", "warmup": 10, "per": "step"},
        "clip_norm": 1.0,
    },
    {
        "optimizer": "adamax",
        "hyperparameters": {"lr": 0.01},
        "seed": 5,
        "schedule": {"kind": "cosine", "warmup": 1, "per": "epoch"},
    },
]


def test_lengths_left_to_the_run_are_the_run_after_the_warm_up() -> None:
    cosine = CosineSchedule(warmup=8, per="step")
    assert run_schedule(cosine, epochs=3, steps=6) == cosine.model_copy(update={"t_max": 10})
    per_epoch = CosineSchedule(warmup=1)
    assert run_schedule(per_epoch, epochs=3, steps=6) == per_epoch.model_copy(update={"t_max": 2})
    step = StepSchedule(per="step")
    assert run_schedule(step, epochs=3, steps=6).step_size == 6  # a third of 18 steps
    fixed = CosineSchedule(t_max=4)
    assert run_schedule(fixed, epochs=3, steps=6) is fixed


@pytest.mark.usefixtures("float64")
def test_per_step_warm_ups_and_schedules_in_a_pack_equal_the_same_trials_alone() -> None:
    curves, results = _packed(WORKLOAD, MEMBERS)
    for member, curve, result in zip(MEMBERS, curves, results, strict=True):
        alone_curve, alone_result = _alone(WORKLOAD, member)
        assert (result.status, result.epochs_run) == ("completed", EPOCHS), member
        assert alone_result.status == "completed"
        assert _max_relative_difference(curve, alone_curve) <= 1e-9, member


@pytest.mark.usefixtures("float64")
def test_a_per_step_cosine_ends_at_its_floor_alone_and_packed() -> None:
    """The cosine's t_max is the run after the warm-up: after the last step, the lr is
    min_factor of the base lr, in the checkpoint of a trial alone and of a pack member."""
    member = MEMBERS[0]
    spec = _checkpoint_trial_spec(member, WORKLOAD)
    _, alone = _run_alone(spec)
    _, packed = _run_pack(_pack_spec([member, MEMBERS[2]], WORKLOAD))
    for ckpt in (alone[EPOCHS], packed[0][EPOCHS]):
        assert ckpt.step == EPOCHS * STEPS
        group = ckpt.optimizer_state["param_groups"][0]
        assert group["lr"] == pytest.approx(0.2 * 0.1, rel=1e-12)
    assert alone[1].optimizer_state["param_groups"][0]["lr"] == pytest.approx(0.2 * 7 / 9)


@pytest.mark.usefixtures("float64")
def test_a_trial_resumed_in_the_middle_of_its_warm_up_goes_on_unchanged(tmp_path: Path) -> None:
    """Checkpointed after epoch 1 (6 of 8 warm-up steps), a trial resumes alone and in a
    pack with its schedule's counter where it was, and ends where it would have."""
    pack = _pack_spec(MEMBERS, WORKLOAD)
    curves, saved = _run_pack(pack)
    for k, member in enumerate(MEMBERS):
        ckpt = _round_trip(saved[k][1], tmp_path / f"member-{k}.pt")
        alone, _ = _run_alone(_checkpoint_trial_spec(member, WORKLOAD), resume=ckpt)
        assert _max_relative_difference(_from(alone, 1), _from(curves[k], 1)) <= 1e-9, member
    resume = {k: _round_trip(saved[k][1], tmp_path / f"pack-{k}.pt") for k in (0, 1)}
    resumed, _ = _run_pack(pack, resume=resume)
    for k in range(len(MEMBERS)):
        first = 1 if k in resume else 0
        assert _max_relative_difference(_from(resumed[k], first), _from(curves[k], first)) <= 1e-9
