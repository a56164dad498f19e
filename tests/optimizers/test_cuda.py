"""The optimizer module on a CUDA device: population parity and torch.optim's fused kernels.

Run by ``make gpu-check`` on a machine with a GPU; skipped (with the reason) everywhere else.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from optisweep.optimizers import OPTIMIZERS, create_optimizer
from tests.optimizers.helpers import MUON_TOLERANCE, max_param_diff, max_state_diff, side_by_side
from tests.optimizers.test_parity import GRID, STEPS, TOLERANCE

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

FUSED = sorted(name for name, spec in OPTIMIZERS.items() if spec.fused_on_cuda)


def _all_members() -> list[dict[str, Any]]:
    return [{"optimizer": name, "hyperparameters": h} for name in sorted(GRID) for h in GRID[name]]


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize("flat", [False, True], ids=["per-tensor", "flat"])
def test_mixed_population_on_cuda_matches_torch_optim_on_cuda(flat: bool) -> None:
    run = side_by_side(_all_members(), device="cuda", torch_options={"foreach": True}, flat=flat)
    assert all(p.is_cuda for p in run.stacked)
    for _ in range(STEPS):
        run.step(run.grads())
    if flat:
        assert run.flat is not None
        assert run.flat.grads_in_place()
    assert max_param_diff(run) <= TOLERANCE
    assert max_param_diff(run, muon_matrices=True) <= MUON_TOLERANCE
    assert max_state_diff(run) <= TOLERANCE


@pytest.mark.usefixtures("float64")
def test_population_on_cuda_matches_the_population_on_the_cpu() -> None:
    on_cuda = side_by_side(_all_members(), device="cuda")
    on_cpu = side_by_side(_all_members(), device="cpu")
    for _ in range(STEPS):
        grads = on_cpu.grads()
        on_cuda.step([g.cuda() for g in grads])
        on_cpu.step(grads)
    muon = torch.tensor([m.optimizer == "muon" for m in on_cpu.members])
    for a, b in zip(on_cuda.stacked, on_cpu.stacked, strict=True):
        difference = (a.cpu() - b).abs().flatten(1).amax(dim=1)
        if b.dim() == 3:  # a matrix per member: Muon's orthogonalise in bfloat16 on each device
            # CUDA's bfloat16 products accumulate in another order than the CPU's: any element
            # of any step may round apart (up to lr * ratio * 2^-8 per step: 1e-2 in 60), not
            # only the rare one of the same device (MUON_TOLERANCE)
            assert difference[muon].max().item() <= 10 * MUON_TOLERANCE
            difference = difference[~muon]
        assert difference.max().item() <= TOLERANCE


@pytest.mark.parametrize("name", FUSED)
def test_create_optimizer_is_fused_on_cuda(name: str) -> None:
    params = [torch.zeros(3, device="cuda", requires_grad=True)]
    optimizer = create_optimizer(name, params)
    assert optimizer.defaults.get("fused") is True
    assert not optimizer.defaults.get("foreach")


@pytest.mark.parametrize("name", FUSED)
@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float64, 1e-10), (torch.float32, 1e-4)])
def test_fused_optimizer_matches_the_population(
    name: str, dtype: torch.dtype, tolerance: float
) -> None:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        run = side_by_side(
            [{"optimizer": name, "hyperparameters": h} for h in GRID[name]], device="cuda"
        )
        assert all(o.defaults.get("fused") for o in run.optimizers)
        for _ in range(STEPS):
            run.step(run.grads(scale=0.1))
        assert max_param_diff(run) <= tolerance
    finally:
        torch.set_default_dtype(previous)
