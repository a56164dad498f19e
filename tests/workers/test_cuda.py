"""Packs on a CUDA device: each member equals its trial alone, also when split to fit memory,
and the fused forward pass equals vmap's there too.

Run by ``make gpu-check`` on a machine with a GPU; skipped (with the reason) everywhere else.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from optisweep.workers.fusion import FUSE_ENV
from optisweep.workers.memory import DEVICE_MEMORY_FRACTION, member_memory_bytes
from tests.workers.test_fusion import MODELS as FUSION_MODELS
from tests.workers.test_fusion import _run, _stack
from tests.workers.test_pack import (
    MIXED,
    _alone,
    _max_relative_difference,
    _packed,
    parts_budget,
)

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.fixture(autouse=True)
def _no_tf32() -> None:
    """Plain float32 matrix products and convolutions, so alone and packed round alike."""
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


def test_float32_mlp_pack_on_cuda_matches_every_family_alone_on_cuda() -> None:
    config = {"name": "mlp-digits", "epochs": 3}
    reported: list[set[int]] = []
    curves, results = _packed(config, MIXED, device="cuda", reported=reported)
    assert reported == [set(range(len(MIXED)))] * 3  # the GPU held the whole pack at once
    for member, curve, result in zip(MIXED, curves, results, strict=True):
        assert result.device.startswith("cuda")
        assert result.status == "completed", member
        alone_curve, alone_result = _alone(config, member, device="cuda")
        assert alone_result.device.startswith("cuda")
        tolerance = 1e-3 if member["optimizer"] == "muon" else 1e-4  # bfloat16 (test_pack)
        assert _max_relative_difference(curve, alone_curve) <= tolerance, member


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize("name", ["cnn-bn-digits", "char-lm"])
def test_float64_pack_on_cuda_matches_alone(name: str) -> None:
    config = {"name": name, "epochs": 2}
    members = [{**MIXED[0], "hyperparameters": {"lr": 1e-3}}, MIXED[5], MIXED[8]]
    curves, results = _packed(config, members, device="cuda")
    for member, curve, result in zip(members, curves, results, strict=True):
        alone_curve, alone_result = _alone(config, member, device="cuda")
        assert (result.status, result.epochs_run) == (alone_result.status, alone_result.epochs_run)
        assert _max_relative_difference(curve, alone_curve) <= 1e-9, member


def test_a_float32_transformer_pack_under_vmap_trains_on_cuda(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """vmap runs attention member by member; SDPA's memory-efficient kernel (what CUDA picks
    for float32) fails its backward under vmap, so the vmapped pass uses the math kernel."""
    monkeypatch.setenv(FUSE_ENV, "0")
    config = {"name": "char-lm", "epochs": 1, "train_sequences": 128, "val_sequences": 32}
    members = [MIXED[0], MIXED[5]]
    curves, results = _packed(config, members, device="cuda")
    for member, curve, result in zip(members, curves, results, strict=True):
        assert result.status == "completed", member
        alone_curve, _ = _alone(config, member, device="cuda")
        assert _max_relative_difference(curve, alone_curve) <= 1e-3, member


def test_a_pack_split_for_a_small_memory_budget_on_cuda_still_matches() -> None:
    config = {"name": "mlp-digits", "epochs": 2}
    members = MIXED[:7]
    reported: list[set[int]] = []
    budget = parts_budget(config, members, per_part=3)
    curves, results = _packed(config, members, device="cuda", free_memory=budget, reported=reported)
    assert reported == [{0, 1, 2}] * 2 + [{3, 4, 5}] * 2 + [{6}] * 2
    whole_curves, whole_results = _packed(config, members, device="cuda")
    assert [r.status for r in results] == [r.status for r in whole_results]
    for curve, whole in zip(curves, whole_curves, strict=True):
        assert _max_relative_difference(curve, whole) <= 1e-4


@pytest.mark.parametrize(
    "workload",
    [
        {"name": "mlp-digits", "epochs": 1},
        {"name": "cnn-bn-digits", "epochs": 1, "channels": 16},
        {"name": "char-lm", "epochs": 1, "train_sequences": 256, "val_sequences": 64},
    ],
    ids=["mlp", "cnn-bn", "char-lm"],
)
def test_the_headroom_covers_what_a_member_really_takes_on_cuda(workload: dict[str, Any]) -> None:
    """The estimate (measured on the CPU) over DEVICE_MEMORY_FRACTION is at least what one
    more member adds to CUDA's peak: a pack planned to fit does fit."""
    members = [{"optimizer": "adam", "hyperparameters": {"lr": 1e-3}, "seed": s} for s in range(8)]

    def peak(count: int) -> int:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        _packed(workload, members[:count], device="cuda")
        return torch.cuda.max_memory_allocated() - before

    slope = (peak(8) - peak(2)) / 6
    estimate = member_memory_bytes(workload, ["adam"])
    assert slope <= estimate / DEVICE_MEMORY_FRACTION, (slope, estimate)
    assert slope >= 0.5 * estimate, (slope, estimate)


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("name", sorted(FUSION_MODELS))
def test_the_fused_pass_on_cuda_equals_vmap(name: str, training: bool) -> None:
    from torch.utils._pytree import tree_map

    from optisweep.workers.fusion import StackedForward

    make, inputs = FUSION_MODELS[name]
    base, params, buffers = _stack(make)
    params, buffers = ({k: v.cuda() for k, v in d.items()} for d in (params, buffers))
    x = tree_map(lambda t: t.cuda(), inputs())
    forward = StackedForward(base, fuse=True)
    forward.train(training)
    assert forward.fused is not None
    fused = _run(forward.fused.outputs, params, buffers, x)
    expected = _run(forward.vmapped, params, buffers, x)
    torch.testing.assert_close(fused[0], expected[0], rtol=1e-9, atol=1e-9)
    for got, want in zip(fused[1:], expected[1:], strict=True):
        for key in want:
            torch.testing.assert_close(got[key], want[key], rtol=1e-8, atol=1e-9, msg=key)
    forward.outputs(params, buffers, x)
    assert forward.path == "fused", forward.reason
