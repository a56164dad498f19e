"""How fast is one PopulationOptimizer step, against separate torch.optim optimizers and memory?

Part 1: K=64 members of a 64-128-10 MLP (9,610 parameters each), one family at a time:
64 torch.optim (foreach) optimizers stepping 64 separate models, versus one population step
(eager, and torch.compile'd). Part 2: a population Adam step over K x N = 50M float32
parameters against the memory floor (28 bytes per parameter: read p, g, m, v; write p, m, v),
with bandwidth taken from a large ``copy_`` in the same run.

Run: ``.venv/bin/python benchmarks/optimizer_step.py [--device cuda] [--quick]``
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

import torch

from optisweep.optimizers import OPTIMIZERS, PopulationOptimizer, create_optimizer, get_spec

MLP_SHAPES = ((128, 64), (128,), (10, 128), (10,))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device, *, repeats: int, warmup: int) -> float:
    """Median seconds per call of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    _sync(device)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def _mlp_tensors(k: int, device: torch.device) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    init = [torch.randn((k, *s), generator=generator).to(device) for s in MLP_SHAPES]
    grads = [torch.randn((k, *s), generator=generator).to(device) * 1e-3 for s in MLP_SHAPES]
    return init, grads


class MuonAndAdamW:
    """One model's muon member as torch runs it: torch.optim.Muon on the 2-D parameters,
    torch.optim.AdamW (foreach, or fused on CUDA) on the rest."""

    def __init__(self, params: list[torch.Tensor]) -> None:
        hp = get_spec("muon").defaults()
        adamw = {k.removeprefix("adamw_"): v for k, v in hp.items() if k.startswith("adamw_")}
        muon = {k: v for k, v in hp.items() if not k.startswith("adamw_")}
        self.optimizers = [
            torch.optim.Muon([p for p in params if p.dim() == 2], **muon),
            create_optimizer("adamw", [p for p in params if p.dim() != 2], **adamw),
        ]

    def step(self) -> None:
        """Both optimizers' steps."""
        for optimizer in self.optimizers:
            optimizer.step()


def reference_optimizer(name: str, params: list[torch.Tensor]) -> torch.optim.Optimizer:
    """The strongest single-model optimizer of a family: torch.optim's (foreach, fused on
    CUDA where torch has it), for muon torch.optim.Muon beside torch.optim.AdamW, or for a
    family torch lacks its reference package's (lion-pytorch, schedulefree, prodigyopt: dev
    dependencies)."""
    if name == "lion":
        from lion_pytorch import Lion

        return Lion(params, **get_spec(name).defaults())
    if name == "muon":
        return MuonAndAdamW(params)  # type: ignore[return-value]
    if name == "prodigy":
        from prodigyopt import Prodigy

        defaults = {**get_spec(name).defaults(), "growth_rate": float("inf")}
        return Prodigy(params, **defaults)
    if name.startswith("schedulefree_"):
        import schedulefree

        kind = {"schedulefree_adamw": "AdamWScheduleFree", "schedulefree_sgd": "SGDScheduleFree"}
        optimizer = getattr(schedulefree, kind[name])(params, **get_spec(name).defaults())
        optimizer.train()
        return optimizer
    return create_optimizer(name, params)


def separate_step(name: str, k: int, device: torch.device, repeats: int) -> float:
    """Seconds per step of k reference optimizers (torch.optim's foreach, or the family's
    reference package) over k separate models."""
    init, grads = _mlp_tensors(k, device)
    models = [[t[i].clone().requires_grad_() for t in init] for i in range(k)]
    for i, params in enumerate(models):
        for p, g in zip(params, grads, strict=True):
            p.grad = g[i].clone()
    separate = [reference_optimizer(name, params) for params in models]

    def step_separate() -> None:
        for optimizer in separate:
            optimizer.step()

    return timed(step_separate, device, repeats=repeats, warmup=3)


def population_step(name: str, k: int, device: torch.device, repeats: int, compile: bool) -> float:
    """Seconds per step of one population of k members of family ``name``."""
    init, grads = _mlp_tensors(k, device)
    stacked = [t.clone().requires_grad_() for t in init]
    for p, g in zip(stacked, grads, strict=True):
        p.grad = g.clone()
    population = PopulationOptimizer(stacked, [{"optimizer": name}] * k, compile=compile)
    return timed(population.step, device, repeats=repeats, warmup=3)


def bandwidth_row(
    total: int, device: torch.device, repeats: int, *, compile: bool
) -> tuple[float, float, float]:
    """(copy bandwidth B/s, floor s, step s) for an Adam population of ``total`` parameters."""
    k = 64
    n = total // k
    src = torch.randn(k, n, device=device)
    dst = torch.empty_like(src)
    copy_s = timed(lambda: dst.copy_(src), device, repeats=repeats, warmup=2)
    bandwidth = 2 * src.numel() * src.element_size() / copy_s
    floor_s = 28 * k * n / bandwidth
    param = src.clone().requires_grad_()
    param.grad = torch.randn_like(src) * 1e-3
    population = PopulationOptimizer([param], [{"optimizer": "adam"}] * k, compile=compile)
    return bandwidth, floor_s, timed(population.step, device, repeats=repeats, warmup=3)


def main() -> None:
    """Print both tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--members", type=int, default=64)
    parser.add_argument("--total", type=int, default=50_000_000)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="fewer families and parameters")
    parser.add_argument("--families", nargs="+", choices=sorted(OPTIMIZERS), help="only these")
    args = parser.parse_args()
    device = torch.device(args.device)
    families = args.families or (["sgd", "adam"] if args.quick else sorted(OPTIMIZERS))
    total = 2_000_000 if args.quick else args.total

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    print(
        f"# device: {device} ({name or platform.machine()}), torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}"
    )
    print(f"\n## Step time, K={args.members} MLP 64-128-10 (9,610 params each), float32\n")
    print(
        "| family | 64 x torch.optim (ms) | population eager (ms) | compiled (ms) "
        "| speed-up eager | speed-up compiled |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    # every eager measurement before any compilation, for the reason given in bandwidth_row
    eager_rows = {
        family: (
            separate_step(family, args.members, device, args.repeats),
            population_step(family, args.members, device, args.repeats, compile=False),
        )
        for family in families
    }
    eager_50m = bandwidth_row(total, device, max(5, args.repeats // 2), compile=False)
    for family in families:
        separate, eager = eager_rows[family]
        compiled = population_step(family, args.members, device, args.repeats, compile=True)
        print(
            f"| {family} | {separate * 1e3:.2f} | {eager * 1e3:.3f} | {compiled * 1e3:.3f} "
            f"| {separate / eager:.1f}x | {separate / compiled:.1f}x |"
        )

    bandwidth, floor_s, compiled = bandwidth_row(
        total, device, max(5, args.repeats // 2), compile=True
    )
    eager = eager_50m[2]
    print(f"\n## Adam population step at K x N = {total / 1e6:.0f}M float32\n")
    print(
        f"copy_ bandwidth: {bandwidth / 1e9:.1f} GB/s; floor = 28 B/param / bandwidth "
        f"= {floor_s * 1e3:.1f} ms\n"
    )
    print("| path | step (ms) | x floor |")
    print("| --- | ---: | ---: |")
    for label, seconds in (("eager", eager), ("compiled", compiled)):
        print(f"| {label} | {seconds * 1e3:.1f} | {seconds / floor_s:.2f} |")


if __name__ == "__main__":
    main()
