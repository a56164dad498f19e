"""A stack of Linear layers runs as batched matrix products: the same losses, gradients and
evaluations as vmap over the members' own models (float64), and only where it applies."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from workers.stacking import linear_stack, stacked_losses


def _members(k: int = 5) -> list[nn.Module]:
    out = []
    for seed in range(k):
        torch.manual_seed(seed)
        out.append(nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3), nn.GELU()))
    return out


def test_only_plain_linear_stacks_take_the_batched_path() -> None:
    assert linear_stack(_members(1)[0]) is not None
    assert linear_stack(nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.1))) is None  # random
    assert linear_stack(nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))) is None  # buffers
    assert linear_stack(nn.Linear(4, 4)) is None  # not a Sequential


@pytest.mark.usefixtures("float64")
def test_batched_losses_and_gradients_equal_vmap_over_the_members() -> None:
    models = _members()
    base = copy.deepcopy(models[0]).to("meta")
    params, buffers = stack_module_state(models)
    inputs, targets = torch.randn(7, 6), torch.randint(0, 3, (7,))
    loss_fn = nn.functional.cross_entropy

    def member_loss(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> torch.Tensor:
        return loss_fn(functional_call(base, (p, b), (inputs,)), targets)

    expected = vmap(member_loss)(params, buffers)
    expected_grads = torch.autograd.grad(expected.sum(), list(params.values()))
    got = stacked_losses(base, loss_fn)(params, buffers, inputs, targets)
    got_grads = torch.autograd.grad(got.sum(), list(params.values()))
    assert torch.allclose(got, expected, rtol=1e-12, atol=0)
    for a, b in zip(got_grads, expected_grads, strict=True):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-14)
    # Inputs it was not written for (3-D) go through vmap, with the same answer.
    per_step = stacked_losses(base, lambda out, y: out.pow(2).mean())
    batched = torch.randn(7, 2, 6)
    via_vmap = vmap(lambda p, b: functional_call(base, (p, b), (batched,)).pow(2).mean())(
        params, buffers
    )
    assert torch.allclose(per_step(params, buffers, batched, targets), via_vmap, rtol=1e-12)
