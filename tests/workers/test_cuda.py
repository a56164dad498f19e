"""Packs on a CUDA device: each member equals its trial alone, also when split to fit memory.

Run by ``make gpu-check`` on a machine with a GPU; skipped (with the reason) everywhere else.
"""

from __future__ import annotations

import pytest
import torch

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
        assert _max_relative_difference(curve, alone_curve) <= 1e-4, member


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
