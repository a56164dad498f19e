"""Checkpoints: a trial resumed from one continues exactly as if it had never stopped, whether
it was checkpointed alone or in a pack and whether it goes on alone or in a pack."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from optisweep.workers.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from optisweep.workers.specs import MemberSpec, PackSpec
from optisweep.workers.train import train_pack, train_trial
from tests.workers.test_pack import DATA_SEED, MIXED, _max_relative_difference

EPOCHS = 5
WORKLOAD = {"name": "rosenbrock", "epochs": EPOCHS, "steps_per_epoch": 15}
# Smaller learning rates than the pack tests, so every member stays finite for 5 epochs.
MEMBERS = [
    {**m, "hyperparameters": {**m["hyperparameters"], "lr": m["hyperparameters"]["lr"] / 100}}
    for m in MIXED
]


def _pack_spec(members: list[dict[str, Any]], workload: dict[str, Any] = WORKLOAD) -> PackSpec:
    return PackSpec(
        workload=workload,
        members=[MemberSpec(**m) for m in members],
        data_seed=DATA_SEED,
        device="cpu",
    )


def _trial_spec(member: dict[str, Any], workload: dict[str, Any] = WORKLOAD) -> PackSpec:
    return PackSpec.single(workload=workload, data_seed=DATA_SEED, device="cpu", **member)


def _run_pack(
    spec: PackSpec, resume: dict[int, Checkpoint] | None = None
) -> tuple[dict[int, dict[int, dict[str, float]]], dict[int, dict[int, Checkpoint]]]:
    """Train a pack; per member, its metrics and checkpoints by epoch."""
    curves: dict[int, dict[int, dict[str, float]]] = {k: {} for k in range(len(spec.members))}
    saved: dict[int, dict[int, Checkpoint]] = {k: {} for k in range(len(spec.members))}

    def report(epoch: int, metrics: dict[int, dict[str, float]]) -> None:
        for k, values in metrics.items():
            curves[k][epoch] = values

    def checkpoint(k: int, ckpt: Checkpoint) -> None:
        assert ckpt.epoch not in curves[k]  # saved before the epoch is reported
        saved[k][ckpt.epoch] = ckpt

    train_pack(spec, report=report, resume=resume, checkpoint=checkpoint)
    return curves, saved


def _run_alone(
    spec: PackSpec, resume: Checkpoint | None = None
) -> tuple[dict[int, dict[str, float]], dict[int, Checkpoint]]:
    curve: dict[int, dict[str, float]] = {}
    saved: dict[int, Checkpoint] = {}

    def report(epoch: int, metrics: dict[str, float]) -> None:
        curve[epoch] = metrics

    def checkpoint(ckpt: Checkpoint) -> None:
        saved[ckpt.epoch] = ckpt

    train_trial(spec, report=report, resume=resume, checkpoint=checkpoint)
    return curve, saved


def _from(curve: dict[int, dict[str, float]], epoch: int) -> list[dict[str, float]]:
    return [curve[e] for e in sorted(curve) if e > epoch]


def _round_trip(ckpt: Checkpoint, path: Path) -> Checkpoint:
    save_checkpoint(path, ckpt)
    return load_checkpoint(path)


@pytest.mark.usefixtures("float64")
def test_a_retried_pack_resumes_every_member_from_its_own_epoch(tmp_path: Path) -> None:
    spec = _pack_spec(MEMBERS)
    curves, saved = _run_pack(spec)
    assert all(sorted(saved[k]) == list(range(1, EPOCHS + 1)) for k in saved)
    # Members were checkpointed at different epochs when the pack failed; one never was.
    at = {k: k % EPOCHS for k in range(len(MEMBERS))}
    resume = {
        k: _round_trip(saved[k][epoch], tmp_path / f"trial-{k}.pt")
        for k, epoch in at.items()
        if epoch > 0
    }
    resumed, _ = _run_pack(spec, resume=resume)
    for k, epoch in at.items():
        assert sorted(resumed[k]) == list(range(epoch + 1, EPOCHS + 1)), k
        assert _max_relative_difference(_from(resumed[k], epoch), _from(curves[k], epoch)) <= 1e-9


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize("k", range(len(MEMBERS)), ids=[m["optimizer"] for m in MEMBERS])
def test_a_pack_member_continues_alone(k: int, tmp_path: Path) -> None:
    curves, saved = _run_pack(_pack_spec(MEMBERS))
    ckpt = _round_trip(saved[k][2], tmp_path / "member.pt")
    alone, _ = _run_alone(_trial_spec(MEMBERS[k]), resume=ckpt)
    assert sorted(alone) == [3, 4, 5]
    assert _max_relative_difference(_from(alone, 2), _from(curves[k], 2)) <= 1e-9


@pytest.mark.usefixtures("float64")
def test_a_trial_checkpointed_alone_resumes_alone_and_in_a_pack(tmp_path: Path) -> None:
    member = MEMBERS[5]  # adam with amsgrad and clipping
    curve, saved = _run_alone(_trial_spec(member))
    ckpt = _round_trip(saved[3], tmp_path / "alone.pt")
    again, _ = _run_alone(_trial_spec(member), resume=ckpt)
    assert _max_relative_difference(_from(again, 3), _from(curve, 3)) <= 1e-9
    in_pack, _ = _run_pack(_pack_spec([member, MEMBERS[0]]), resume={0: ckpt})
    assert _max_relative_difference(_from(in_pack[0], 3), _from(curve, 3)) <= 1e-9


@pytest.mark.parametrize("where", ["alone", "packed"])
def test_a_resumed_trial_goes_on_from_its_checkpoints_time(where: str) -> None:
    _, saved = _run_alone(_trial_spec(MEMBERS[0]))
    earlier = 1_000.0  # what the attempts before this one trained, in seconds
    ckpt = dataclasses.replace(saved[2], metrics={**saved[2].metrics, "time_seconds": earlier})
    if where == "alone":
        resumed, _ = _run_alone(_trial_spec(MEMBERS[0]), resume=ckpt)
    else:
        resumed = _run_pack(_pack_spec(MEMBERS[:2]), resume={0: ckpt})[0][0]
    times = [resumed[epoch]["time_seconds"] for epoch in (3, 4, 5)]
    assert earlier < times[0] < times[1] < times[2] < earlier + 60


def test_mlp_digits_checkpoint_every_two_epochs(tmp_path: Path) -> None:
    workload = {"name": "mlp-digits", "epochs": 5, "batch_size": 64}
    members = MIXED[:4]
    spec = _pack_spec(members, workload)
    saved: dict[int, list[int]] = {k: [] for k in range(len(members))}
    train_pack(
        spec,
        checkpoint=lambda k, ckpt: saved[k].append(ckpt.epoch),
        checkpoint_every=2,
    )
    assert saved == {k: [2, 4, 5] for k in range(len(members))}  # and after the last epoch


def test_auto_checkpoints_keep_their_writes_a_small_share_of_the_time() -> None:
    """Writes that take long against the epochs: the first epoch and the last write one;
    epochs that take long against the writes: every epoch writes one."""
    import time

    workload = {"name": "rosenbrock", "epochs": 6, "steps_per_epoch": 2}
    slow: list[int] = []

    def slow_write(k: int, ckpt: Checkpoint) -> None:
        slow.append(ckpt.epoch)
        time.sleep(0.05)

    train_pack(_pack_spec(MEMBERS[:1], workload), checkpoint=slow_write, checkpoint_every="auto")
    assert slow == [1, 6]

    quick: list[int] = []

    def slow_epochs(epoch: int, metrics: dict[int, dict[str, float]]) -> set[int]:
        time.sleep(0.05)  # the report of one epoch: 50 ms, far more than 19x a quick write
        return set()

    train_pack(
        _pack_spec(MEMBERS[:1], workload),
        report=slow_epochs,
        checkpoint=lambda k, ckpt: quick.append(ckpt.epoch),
        checkpoint_every="auto",
    )
    assert quick == [1, 2, 3, 4, 5, 6]
    alone: list[int] = []

    def slow_alone(ckpt: Checkpoint) -> None:
        alone.append(ckpt.epoch)
        time.sleep(0.05)

    train_trial(_trial_spec(MEMBERS[0], workload), checkpoint=slow_alone, checkpoint_every="auto")
    assert alone == [1, 6]


def test_a_checkpoint_of_another_trial_is_refused(tmp_path: Path) -> None:
    _, saved = _run_alone(_trial_spec(MEMBERS[0]))
    with pytest.raises(ValueError, match="resume: the checkpoint is of a 'sgd' trial, not 'adam'"):
        _run_alone(_trial_spec(MEMBERS[5]), resume=saved[1])
    other_lr = {**MEMBERS[0], "hyperparameters": {**MEMBERS[0]["hyperparameters"], "lr": 0.5}}
    with pytest.raises(ValueError, match="hyperparameters"):
        _run_alone(_trial_spec(other_lr), resume=saved[1])


def test_a_checkpoint_of_an_unknown_format_is_refused(tmp_path: Path) -> None:
    import torch

    path = tmp_path / "old.pt"
    torch.save({"version": 0}, path)
    with pytest.raises(ValueError, match="format version 0, expected at most 2"):
        load_checkpoint(path)


def test_checkpoints_carry_every_epoch_so_far_alone_packed_and_resumed(tmp_path: Path) -> None:
    # A resumed attempt reports these again: the controller may have lost them (a server killed
    # with reports still in its inbox), so they must be in the checkpoint, not only the last.
    curves, saved = _run_pack(_pack_spec(MEMBERS[:2]))
    for k in (0, 1):
        for epoch, ckpt in saved[k].items():
            assert ckpt.history == {e: curves[k][e] for e in range(1, epoch + 1)}
    curve, alone = _run_alone(_trial_spec(MEMBERS[0]))
    assert alone[EPOCHS].history == curve
    resumed_curve, resumed = _run_alone(_trial_spec(MEMBERS[0]), resume=alone[2])
    assert set(resumed_curve) == set(range(3, EPOCHS + 1))
    assert list(resumed[EPOCHS].history) == list(range(1, EPOCHS + 1))
    path = tmp_path / "trial.pt"
    save_checkpoint(path, resumed[EPOCHS])
    assert load_checkpoint(path).history == resumed[EPOCHS].history


def test_a_version_1_checkpoint_loads_with_its_last_epoch_as_history(tmp_path: Path) -> None:
    import torch

    _, alone = _run_alone(_trial_spec(MEMBERS[0]))
    path = tmp_path / "v2.pt"
    save_checkpoint(path, alone[3])
    payload = torch.load(path, weights_only=True)
    del payload["history"]
    payload["version"] = 1
    torch.save(payload, path)
    loaded = load_checkpoint(path)
    assert loaded.history == {3: alone[3].metrics}


def test_a_checkpoint_written_before_the_hyperparameters_rename_still_loads(tmp_path: Path) -> None:
    import torch

    _, alone = _run_alone(_trial_spec(MEMBERS[0]))
    path = tmp_path / "old-key.pt"
    save_checkpoint(path, alone[2])
    payload = torch.load(path, weights_only=True)
    payload["config"]["hparams"] = payload["config"].pop("hyperparameters")
    torch.save(payload, path)
    assert load_checkpoint(path).config == alone[2].config
