"""Does each fused layer pay, one by one? K members' layers fused against the same under vmap.

For each layer kind a pack fuses (``optisweep.workers.fusion``): a stack of Linear layers, a
convolution with BatchNorm and max pooling (HFTA's grouped convolution over the members'
channels side by side), LayerNorm (after a Linear layer: every member's input differs), an
Embedding, and causal self-attention (folded into one SDPA call over [K*B, heads, T, d] against
vmap, which has no batching rule for SDPA's kernels): one training step (forward, a loss,
backward) of K members, fused and vmapped, on the same stacked parameters, and K separate
models one after another; milliseconds per step, medians.

Run: ``python -m benchmarks.fused_layers [--device cuda] [--members 8 32] [--repeats 15]``
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import stack_module_state, vmap
from torch.nn import functional as F

from optisweep.workers.fusion import StackedForward


class Attention(nn.Module):
    """Causal self-attention with SDPA, pre-norm and residual, as in ``char-lm``."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: Tensor) -> Tensor:
        """x [N, T, d] -> [N, T, d]."""
        n, t, d = x.shape
        q, k, v = (
            z.reshape(n, t, self.heads, d // self.heads).transpose(1, 2)
            for z in self.qkv(x).split(d, dim=-1)
        )
        attended = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return x + self.proj(attended.transpose(1, 2).reshape(n, t, d))


@dataclass(frozen=True)
class Layer:
    """A layer kind: a model made of it and a batch of its inputs."""

    name: str
    model: Callable[[], nn.Module]
    inputs: Callable[[torch.device], Tensor]


LAYERS = (
    Layer(
        "Linear x3 (64-128-128-10)",
        lambda: nn.Sequential(
            nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10)
        ),
        lambda device: torch.randn(64, 64, device=device),
    ),
    Layer(
        "Conv2d + BatchNorm2d + max pool (8 -> 16 ch, 16x16)",
        lambda: nn.Sequential(
            nn.Conv2d(8, 16, 3, padding=1, bias=False),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.MaxPool2d(2),
        ),
        lambda device: torch.randn(64, 8, 16, 16, device=device),
    ),
    Layer(  # after a layer of each member's own: on the shared input vmap would normalise once
        "Linear + LayerNorm (64 x 64 x 128)",
        lambda: nn.Sequential(nn.Linear(128, 128), nn.LayerNorm(128)),
        lambda device: torch.randn(64, 64, 128, device=device),
    ),
    Layer(
        "Embedding (256 x 64, 64 tokens)",
        lambda: nn.Sequential(nn.Embedding(256, 64)),
        lambda device: torch.randint(0, 256, (64, 64), device=device),
    ),
    Layer(
        "causal attention (SDPA, d 64, 4 heads, T 64)",
        lambda: Attention(64, 4),
        lambda device: torch.randn(64, 64, 64, device=device),
    ),
)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_ms(step: Callable[[], None], device: torch.device, repeats: int) -> float:
    step()
    step()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def layer_row(layer: Layer, members: int, device: torch.device, repeats: int) -> str:
    """One table row: fused, vmapped and one-at-a-time milliseconds per training step."""
    models = [layer.model().to(device) for _ in range(members)]
    params, buffers = stack_module_state(models)
    params = {name: p.detach().requires_grad_() for name, p in params.items()}
    forward = StackedForward(copy.deepcopy(models[0]).to("meta"), fuse=True)
    forward.train()
    x = layer.inputs(device)
    forward.outputs(params, buffers, x)
    if forward.path != "fused":
        return f"| {layer.name} | {members} | not fused: {forward.reason} | | | | |"

    def stacked(run: Callable[..., Tensor]) -> Callable[[], None]:
        def step() -> None:
            out = run(params, buffers, x)
            vmap(lambda o: o.float().square().mean())(out).sum().backward()

        return step

    def alone() -> None:
        for model in models:
            model(x).float().square().mean().backward()

    fused_ms = _median_ms(stacked(forward.outputs), device, repeats)
    vmap_ms = _median_ms(stacked(forward.vmapped), device, repeats)
    alone_ms = _median_ms(alone, device, repeats)
    return (
        f"| {layer.name} | {members} | {fused_ms:.2f} | {vmap_ms:.2f} | {alone_ms:.2f} "
        f"| {vmap_ms / fused_ms:.2f}x | {alone_ms / fused_ms:.2f}x |"
    )


def table(device: str, *, members: list[int], repeats: int) -> str:
    """Every layer kind at every pack size, as Markdown."""
    lines = [
        "| layer | K | fused (ms) | vmap (ms) | K alone (ms) | vmap / fused | alone / fused |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for layer in LAYERS:
        for k in members:
            lines.append(layer_row(layer, k, torch.device(device), repeats))
    return "\n".join(lines)


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--members", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    print(f"{args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(table(args.device, members=args.members, repeats=args.repeats))


if __name__ == "__main__":
    main()
