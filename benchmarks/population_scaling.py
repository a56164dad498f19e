"""How does one population step scale with K, against K separate torch.optim optimizers?

For K = 64, 256 and 1024 members of the reference MLP (mlp-digits) and of a CNN with
BatchNorm (cnn-bn-digits), one family at a time: K models each stepped by its own optimizer
from ``create_optimizer`` (torch.optim's fused kernel on CUDA where torch has one, foreach
otherwise; for a family torch lacks, its reference package's: lion-pytorch), against one eager
PopulationOptimizer step over the stacked parameters, one tensor per parameter and (``flat``)
all of them as one [K, N] buffer, as packs hold them.

Run: ``python -m benchmarks.population_scaling [--device cuda] [--quick]``
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import torch

from benchmarks.optimizer_step import reference_optimizer, timed
from optisweep.optimizers import OPTIMIZERS, PopulationOptimizer
from optisweep.optimizers.flat import FlatParameters
from optisweep.workers.workloads import parse_workload_config

WORKLOADS = ("mlp-digits", "cnn-bn-digits")


def parameter_shapes(workload: str) -> list[tuple[int, ...]]:
    """The shapes of one trial's parameters for a built-in workload."""
    workload_, config = parse_workload_config({"name": workload})
    built = workload_.build(config, seed=0, device=torch.device("cpu"))
    return [tuple(p.shape) for p in built.model.parameters()]


def _tensors(
    shapes: Sequence[tuple[int, ...]], k: int, device: torch.device
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    params = [torch.randn((k, *s), generator=generator).to(device) for s in shapes]
    grads = [torch.randn((k, *s), generator=generator).to(device) * 1e-3 for s in shapes]
    return params, grads


def separate_ms(
    name: str, shapes: Sequence[tuple[int, ...]], k: int, device: torch.device, repeats: int
) -> float:
    """Milliseconds per step of k reference optimizers (create_optimizer's, or for a family
    torch lacks its reference package's) over k separate models."""
    init, grads = _tensors(shapes, k, device)
    optimizers = []
    for i in range(k):
        params = [t[i].clone().requires_grad_() for t in init]
        for p, g in zip(params, grads, strict=True):
            p.grad = g[i].clone()
        optimizers.append(reference_optimizer(name, params))

    def step() -> None:
        for optimizer in optimizers:
            optimizer.step()

    return 1e3 * timed(step, device, repeats=repeats, warmup=2)


def population_ms(
    name: str,
    shapes: Sequence[tuple[int, ...]],
    k: int,
    device: torch.device,
    repeats: int,
    *,
    flat: bool = False,
) -> float:
    """Milliseconds per step of one eager population of k members of family ``name``."""
    init, grads = _tensors(shapes, k, device)
    buffer = FlatParameters(init) if flat else None
    stacked = buffer.params if buffer else [t.clone().requires_grad_() for t in init]
    for p, g in zip(stacked, grads, strict=True):
        if buffer is not None:
            assert p.grad is not None
            p.grad.copy_(g)  # into the flat gradient buffer, where backward puts it
        else:
            p.grad = g
    population = PopulationOptimizer(stacked, [{"optimizer": name}] * k, flat=buffer)
    return 1e3 * timed(population.step, device, repeats=repeats, warmup=3)


def run(device: torch.device, *, quick: bool = False) -> str:
    """The table as Markdown."""
    sizes = (16, 64) if quick else (64, 256, 1024)
    families = ["sgd", "adam"] if quick else sorted(OPTIMIZERS)
    lines = [
        "| workload | family | K | fused | K x torch.optim (ms) | population (ms) "
        "| flat (ms) | speed-up | flat speed-up |",
        "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for workload in WORKLOADS:
        shapes = parameter_shapes(workload)
        for family in families:
            fused = "yes" if OPTIMIZERS[family].fused_on_cuda and device.type == "cuda" else "no"
            for k in sizes:
                repeats = 3 if quick else max(5, 2_048 // k)
                alone = separate_ms(family, shapes, k, device, repeats)
                packed = population_ms(family, shapes, k, device, repeats * 4)
                flat = population_ms(family, shapes, k, device, repeats * 4, flat=True)
                lines.append(
                    f"| {workload} | {family} | {k} | {fused} | {alone:.2f} | {packed:.3f} "
                    f"| {flat:.3f} | {alone / packed:.1f}x | {alone / flat:.1f}x |"
                )
    return "\n".join(lines)


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="two families, small K")
    args = parser.parse_args()
    print(run(torch.device(args.device), quick=args.quick))


if __name__ == "__main__":
    main()
