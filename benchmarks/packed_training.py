"""How many more trials per hour does packing train than one trial at a time, on one device?

For the reference MLP, a CNN with BatchNorm, the user's CNN of ``examples/own-model`` (imported
by its entrypoint, as a worker imports it: BatchNorm, Dropout, a Dataset with augmentation) and
a small byte-level transformer on the standard library's source, K trials of mixed families and
learning rates are trained as one pack (``train_pack``), fused (the default:
``optisweep.workers.fusion``) and under vmap (``OPTISWEEP_FUSE=0``), and a sample of the same
trials one after another alone (``train_trial``, torch.optim's fused kernels on CUDA); all as
trials per hour, in one run. The memory table sets the measured peak memory per pack member
(the slope between two pack sizes, one epoch each, evaluation included) against the estimate a
pack is split by (``member_memory_bytes``).

Run: ``python -m benchmarks.packed_training [--device cuda] [--quick] [--only NAME ...]
[--repeats N]``
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from optisweep.optimizers import OPTIMIZERS, get_spec
from optisweep.workers.fusion import FUSE_ENV
from optisweep.workers.memory import member_memory_bytes
from optisweep.workers.specs import MemberSpec, PackSpec
from optisweep.workers.train import train_pack, train_trial

OWN_MODEL = Path(__file__).resolve().parent.parent / "examples" / "own-model"
"""The user's model of the README's walk-through; its entrypoint is ``model:workload``."""

BASE_LR = {
    "sgd": 0.1,
    "momentum": 0.03,
    "adagrad": 0.03,
    "adadelta": 1.0,
    "rmsprop": 1e-3,
    "adam": 1e-3,
    "adamw": 1e-3,
    "adamax": 2e-3,
    "nadam": 1e-3,
    "radam": 1e-3,
    "lion": 1e-4,
    "adafactor": 1e-2,
}
"""Each family's lr around which members are drawn (a family not listed: its default lr)."""


@dataclass(frozen=True)
class Case:
    """One workload config, how many trials to pack, and how many to time alone."""

    workload: dict[str, Any]
    pack: int
    alone: int

    @property
    def label(self) -> str:
        """The workload's name, or its entrypoint."""
        return str(self.workload.get("name") or self.workload["entrypoint"])


def cases(*, quick: bool, device: str = "cuda") -> list[Case]:
    """The configurations benchmarked: GPU-sized ones, CPU-sized ones, or tiny ones."""
    own = {"entrypoint": "model:workload", "epochs": 6}  # examples/own-model/sweep.yaml's
    if quick:
        return [
            Case({"name": "mlp-digits", "epochs": 2}, pack=16, alone=2),
            Case({"name": "cnn-bn-digits", "epochs": 1}, pack=8, alone=2),
            Case({**own, "epochs": 1}, pack=4, alone=2),
            Case({"name": "char-lm", "epochs": 1, "train_sequences": 128}, pack=4, alone=1),
        ]
    if not device.startswith("cuda"):
        return [
            Case({"name": "mlp-digits", "epochs": 10}, pack=32, alone=4),
            Case({"name": "cnn-bn-digits", "epochs": 3}, pack=16, alone=3),
            Case(own, pack=16, alone=4),
            Case({"name": "char-lm", "epochs": 1, "train_sequences": 256}, pack=8, alone=2),
        ]
    return [
        Case({"name": "mlp-digits", "epochs": 10}, pack=256, alone=8),
        Case({"name": "cnn-bn-digits", "epochs": 5, "channels": 16}, pack=128, alone=6),
        Case({**own, "channels": 16}, pack=128, alone=6),
        Case(
            {
                "name": "char-lm",
                "epochs": 2,
                "context": 64,
                "d_model": 128,
                "layers": 2,
                "train_sequences": 1_024,
                "val_sequences": 128,
            },
            pack=32,
            alone=3,
        ),
    ]


def _base_lr(family: str) -> float:
    return BASE_LR.get(family) or float(get_spec(family).defaults()["lr"])


def members(count: int) -> list[dict[str, Any]]:
    """``count`` trials cycling through every family, lr log-uniform around a family default."""
    rng = random.Random(0)
    families = sorted(OPTIMIZERS)
    return [
        {
            "optimizer": families[i % len(families)],
            "hyperparameters": {
                "lr": _base_lr(families[i % len(families)]) * 10 ** rng.uniform(-1, 0.5)
            },
            "seed": i,
        }
        for i in range(count)
    ]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextmanager
def fused(enabled: bool) -> Iterator[None]:
    """Packs built inside take the fused path (the default) or vmap."""
    previous = os.environ.get(FUSE_ENV)
    os.environ[FUSE_ENV] = "1" if enabled else "0"
    try:
        yield
    finally:
        if previous is None:
            del os.environ[FUSE_ENV]
        else:
            os.environ[FUSE_ENV] = previous


def _own_model_importable() -> None:
    """``examples/own-model`` on the path, as a worker's working_dir puts it."""
    if str(OWN_MODEL) not in sys.path:
        sys.path.insert(0, str(OWN_MODEL))


def pack_seconds(workload: dict[str, Any], trials: list[dict[str, Any]], device: str) -> float:
    """Wall seconds to train ``trials`` as one pack."""
    spec = PackSpec(
        workload=workload, members=[MemberSpec(**t) for t in trials], data_seed=0, device=device
    )
    start = time.perf_counter()
    train_pack(spec)
    _sync(torch.device(device))
    return time.perf_counter() - start


def alone_seconds(workload: dict[str, Any], trials: list[dict[str, Any]], device: str) -> float:
    """Wall seconds per trial, training ``trials`` one after another."""
    start = time.perf_counter()
    for trial in trials:
        train_trial(PackSpec.single(workload=workload, data_seed=0, device=device, **trial))
    _sync(torch.device(device))
    return (time.perf_counter() - start) / len(trials)


def throughput_table(
    device: str, *, quick: bool, only: list[str] | None = None, repeats: int = 1
) -> str:
    """Trials per hour, packed (fused and vmapped) against alone, as Markdown; with
    ``repeats``, the three are run in turn that many times and their medians compared."""
    _own_model_importable()
    lines = [
        "| workload | epochs | K | fused pack (s) | vmap pack (s) | alone (s/trial) "
        "| fused trials/h | alone trials/h | fused / alone | fused / vmap |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for case in cases(quick=quick, device=device):
        if only and not any(word in case.label for word in only):
            continue
        trials = members(case.pack)
        warm = {**case.workload, "epochs": 1}
        for enabled in (True, False):  # warm-ups: imports, first optimizers, allocations
            with fused(enabled):
                pack_seconds(warm, trials[:2], device)
        alone_seconds(warm, trials[:1], device)
        runs: list[tuple[float, float, float]] = []
        for _ in range(repeats):
            with fused(True):
                packed = pack_seconds(case.workload, trials, device)
            with fused(False):
                vmapped = pack_seconds(case.workload, trials, device)
            runs.append(
                (packed, vmapped, alone_seconds(case.workload, trials[: case.alone], device))
            )
        packed, vmapped, alone = (statistics.median(column) for column in zip(*runs, strict=True))
        packed_rate, alone_rate = 3600 * case.pack / packed, 3600 / alone
        lines.append(
            f"| {case.label} | {case.workload['epochs']} | {case.pack} "
            f"| {packed:.2f} | {vmapped:.2f} | {alone:.3f} | {packed_rate:,.0f} "
            f"| {alone_rate:,.0f} | {packed_rate / alone_rate:.2f}x | {vmapped / packed:.2f}x |"
        )
    return "\n".join(lines)


def peak_bytes(workload: dict[str, Any], trials: list[dict[str, Any]], device: str) -> int:
    """Peak CUDA memory allocated while training ``trials`` as a pack for one epoch."""
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    pack_seconds({**workload, "epochs": 1}, trials, device)
    return torch.cuda.max_memory_allocated(device) - before


def scaling_table(device: str, *, quick: bool) -> str:
    """Trials per hour and peak memory of one reference-MLP pack as K grows, as Markdown."""
    sizes = (4, 16, 64) if quick else (64, 256, 1_024, 4_096)
    workload = {"name": "mlp-digits", "epochs": 1 if quick else 3}
    lines = [
        "| workload | epochs | K | pack (s) | trials/h | peak (MiB) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    pack_seconds({**workload, "epochs": 1}, members(2), device)  # warm-up
    for k in sizes:
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats(device)
        seconds = pack_seconds(workload, members(k), device)
        peak = (
            f"{torch.cuda.max_memory_allocated(device) / 2**20:,.0f}"
            if device.startswith("cuda")
            else "n/a"
        )
        lines.append(
            f"| {workload['name']} | {workload['epochs']} | {k} | {seconds:.2f} "
            f"| {3600 * k / seconds:,.0f} | {peak} |"
        )
    return "\n".join(lines)


def memory_table(device: str, *, quick: bool) -> str:
    """Measured peak memory per member against the estimate, as Markdown (CUDA only)."""
    _own_model_importable()
    lines = [
        "| workload | K small / large | peak small (MiB) | peak large (MiB) "
        "| per member (MiB) | estimate (MiB) | measured / estimate |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for case in cases(quick=quick, device=device):
        large = members(case.pack)
        small = large[: max(1, case.pack // 4)]
        peak_small = peak_bytes(case.workload, small, device)
        peak_large = peak_bytes(case.workload, large, device)
        per_member = (peak_large - peak_small) / (len(large) - len(small))
        estimate = member_memory_bytes(case.workload, sorted({t["optimizer"] for t in large}))
        lines.append(
            f"| {case.label} | {len(small)} / {len(large)} "
            f"| {peak_small / 2**20:,.1f} | {peak_large / 2**20:,.1f} "
            f"| {per_member / 2**20:,.2f} | {estimate / 2**20:,.2f} "
            f"| {per_member / estimate if estimate else math.nan:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    """Print both tables (the memory table on CUDA only)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="small packs and few epochs")
    parser.add_argument("--only", nargs="*", default=[], help="workloads whose names hold these")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each; medians")
    args = parser.parse_args()
    print(throughput_table(args.device, quick=args.quick, only=args.only, repeats=args.repeats))
    print()
    print(scaling_table(args.device, quick=args.quick))
    if args.device.startswith("cuda"):
        print()
        print(memory_table(args.device, quick=args.quick))


if __name__ == "__main__":
    main()
