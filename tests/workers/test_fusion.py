"""The fused forward pass of a pack gives vmap's outputs, gradients and running statistics, and
falls back to vmap where a model does what fusing cannot follow."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import Tensor, nn
from torch.func import stack_module_state, vmap
from torch.nn import functional as F

from optisweep.workers.fusion import FUSE_ENV, StackedForward, fuse_model

MEMBERS, ROWS = 3, 5
"""Three members, five rows: neither divides the other, so a mixed-up layout cannot hide."""


class Scale(nn.Module):
    """A layer the fused path does not know: it runs under vmap inside the fused pass."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.rand(width) + 0.5)

    def forward(self, x: Tensor) -> Tensor:
        """x times a learned per-feature gain."""
        return x * self.gain


class Residual(nn.Module):
    """conv-BN-ReLU-conv-BN plus the input: a ResNet basic block."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        """relu(x + body(x))."""
        return F.relu(x + self.body(x))


class TinyLM(nn.Module):
    """Embedding, causal attention, LayerNorm and a head: a one-block transformer."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(11, 8)
        self.qkv = nn.Linear(8, 24)
        self.norm = nn.LayerNorm(8)
        self.head = nn.Linear(8, 11, bias=False)

    def forward(self, tokens: Tensor) -> Tensor:
        """tokens [N, T] -> logits [N, T, 11]."""
        x = self.embed(tokens)
        n, t, _ = x.shape
        q, k, v = (z.reshape(n, t, 2, 4).transpose(1, 2) for z in self.qkv(x).split(8, dim=-1))
        x = x + F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).flatten(2)
        return self.head(self.norm(x))


class TwoInputs(nn.Module):
    """A model of two keyword inputs whose branches are concatenated along the features."""

    def __init__(self) -> None:
        super().__init__()
        self.left = nn.Linear(4, 3)
        self.right = nn.Linear(2, 3)
        self.out = nn.Linear(6, 2)

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        """Both branches side by side, then a linear layer."""
        return self.out(torch.cat([self.left(a), torch.tanh(self.right(b))], dim=1))


MODELS: dict[str, tuple[Callable[[], nn.Module], Callable[[], Any]]] = {
    "mlp": (
        lambda: nn.Sequential(nn.Linear(6, 7), nn.ReLU(), nn.Linear(7, 4)),
        lambda: torch.randn(ROWS, 6),
    ),
    "mlp-batchnorm-scale": (
        lambda: nn.Sequential(nn.Linear(6, 7), nn.BatchNorm1d(7), Scale(7), nn.Linear(7, 4)),
        lambda: torch.randn(ROWS, 6),
    ),
    "cnn-batchnorm": (
        lambda: nn.Sequential(
            nn.Conv2d(2, 4, 3, stride=2, padding=1),
            nn.BatchNorm2d(4),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(4 * 2 * 2, 3),
        ),
        lambda: torch.randn(ROWS, 2, 8, 8),
    ),
    "grouped-reflect-dilated-conv": (
        lambda: nn.Sequential(
            nn.Conv2d(4, 6, 3, groups=2, padding=2, dilation=2, padding_mode="reflect"),
            nn.GroupNorm(3, 6),
            nn.SiLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(6, 2),
        ),
        lambda: torch.randn(ROWS, 4, 7, 7),
    ),
    "conv1d": (
        lambda: nn.Sequential(
            nn.Conv1d(3, 5, 3, padding=1),
            nn.BatchNorm1d(5, momentum=0.3),
            nn.Tanh(),
            nn.Flatten(),
            nn.Linear(5 * 9, 2),
        ),
        lambda: torch.randn(ROWS, 3, 9),
    ),
    "resnet-block": (
        lambda: nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1),
            Residual(4),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.LayerNorm(4),
            nn.Linear(4, 3),
        ),
        lambda: torch.randn(ROWS, 1, 6, 6),
    ),
    "transformer": (TinyLM, lambda: torch.randint(0, 11, (ROWS, 6))),
    "torch-transformer-layer": (  # its attention runs under vmap, the rest fused
        lambda: nn.Sequential(
            nn.Linear(4, 8),
            nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True),
            nn.Linear(8, 3),
        ),
        lambda: torch.randn(ROWS, 6, 4),
    ),
    "two-inputs": (TwoInputs, lambda: {"a": torch.randn(ROWS, 4), "b": torch.randn(ROWS, 2)}),
}


def _stack(make: Callable[[], nn.Module]) -> tuple[nn.Module, dict[str, Tensor], dict[str, Tensor]]:
    models = []
    for seed in range(MEMBERS):
        torch.manual_seed(seed)
        models.append(make())
    params, buffers = stack_module_state(models)
    for name, buffer in buffers.items():  # running statistics that differ between members
        if buffer.is_floating_point():
            buffers[name] = buffer + torch.rand_like(buffer)
    return copy.deepcopy(models[0]).to("meta"), params, buffers


def _run(
    forward: Callable[..., Any], params: dict[str, Tensor], buffers: dict[str, Tensor], x: Any
) -> tuple[Tensor, dict[str, Tensor], dict[str, Tensor]]:
    params = {name: p.detach().clone().requires_grad_() for name, p in params.items()}
    buffers = {name: b.clone() for name, b in buffers.items()}
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # its kernels have no gradients
    try:
        out = forward(params, buffers, x)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    out.square().sum().backward()
    grads = {name: p.grad for name, p in params.items() if p.grad is not None}
    return out.detach(), grads, buffers


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_fused_pass_equals_vmap_in_outputs_gradients_and_statistics(
    name: str, training: bool
) -> None:
    make, inputs = MODELS[name]
    base, params, buffers = _stack(make)
    x = inputs()
    forward = StackedForward(base, fuse=True)
    forward.train(training)
    assert forward.fused is not None
    fused = _run(forward.fused.outputs, params, buffers, x)
    expected = _run(forward.vmapped, params, buffers, x)
    assert fused[0].shape[:2] == (MEMBERS, ROWS)
    torch.testing.assert_close(fused[0], expected[0], rtol=1e-10, atol=1e-10)
    for got, want in zip(fused[1:], expected[1:], strict=True):
        assert got.keys() == want.keys()
        for key in want:
            torch.testing.assert_close(got[key], want[key], rtol=1e-9, atol=1e-10, msg=key)
    out = forward.outputs(params, buffers, x)
    assert forward.path == "fused", forward.reason
    assert out.shape == fused[0].shape


def test_a_model_that_mixes_examples_is_found_and_runs_under_vmap() -> None:
    class Centred(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.first = nn.Linear(4, 3)
            self.second = nn.Linear(3, 2)

        def forward(self, x: Tensor) -> Tensor:
            h = self.first(x)
            return self.second(h - h.mean(dim=0))  # folded, the mean would span every member

    base, params, buffers = _stack(Centred)
    forward = StackedForward(base, fuse=True)
    forward.train()
    x = torch.randn(ROWS, 4)
    out = forward.outputs(params, buffers, x)
    assert forward.path == "vmap"
    assert forward.reason == "the fused pass differs from vmap's on this model"
    torch.testing.assert_close(out, forward.vmapped(params, buffers, x))


def test_layers_the_fused_path_does_not_cover_run_under_vmap_inside_it() -> None:
    # Bilinear (two tensor arguments) and PReLU are not fused layers: each runs under vmap,
    # member by member in one call, between the fused ones.
    class Pairwise(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Linear(3, 4)
            self.pair = nn.Bilinear(4, 4, 5)
            self.act = nn.PReLU(5)
            self.head = nn.Linear(5, 2)

        def forward(self, x: Tensor) -> Tensor:
            h = self.embed(x)
            return self.head(self.act(self.pair(h, torch.tanh(h))))

    base, params, buffers = _stack(Pairwise)
    forward = StackedForward(base, fuse=True)
    forward.train()
    x = torch.randn(ROWS, 3)
    out = forward.outputs(params, buffers, x)
    assert forward.path == "fused", forward.reason
    torch.testing.assert_close(out, forward.vmapped(params, buffers, x))


def test_a_model_with_parameters_of_its_own_at_the_top_is_not_fused() -> None:
    class Offset(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bias = nn.Parameter(torch.zeros(2))
            self.linear = nn.Linear(3, 2)

        def forward(self, x: Tensor) -> Tensor:
            return self.linear(x) + self.bias

    assert fuse_model(Offset().to("meta")) is None
    base, params, buffers = _stack(Offset)
    forward = StackedForward(base, fuse=True)
    forward.outputs(params, buffers, torch.randn(ROWS, 3))
    assert (forward.path, forward.reason) == ("vmap", "no layer to fuse")


def test_the_fused_path_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FUSE_ENV, "0")
    base, params, buffers = _stack(MODELS["mlp"][0])
    forward = StackedForward(base)
    assert forward.fused is None
    forward.outputs(params, buffers, torch.randn(ROWS, 6))
    assert forward.path == "vmap"


@pytest.mark.usefixtures("float64")
def test_members_of_a_fused_pack_are_independent() -> None:
    # Changing one member's parameters changes its output only.
    base, params, buffers = _stack(MODELS["resnet-block"][0])
    forward = StackedForward(base, fuse=True)
    forward.train(False)
    x = MODELS["resnet-block"][1]()
    before = forward.outputs(params, buffers, x)
    assert forward.path == "fused"
    changed = {name: p.clone() for name, p in params.items()}
    changed["0.weight"][1] += 1.0
    after = forward.outputs(changed, buffers, x)
    torch.testing.assert_close(after[0], before[0], rtol=0, atol=0)
    torch.testing.assert_close(after[2], before[2], rtol=0, atol=0)
    assert not torch.allclose(after[1], before[1])
    each = vmap(lambda row: row, in_dims=0)(after)
    assert each.shape == before.shape
