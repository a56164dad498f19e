"""How many more trials per hour does packing train than one trial at a time, on one device?

For three workloads (the reference MLP, a CNN with BatchNorm and a small byte-level transformer
on the standard library's source), K trials of mixed families and learning rates are trained
as one pack (``train_pack``), and a sample of the same trials one after another alone
(``train_trial``, torch.optim's fused kernels on CUDA); both report trials per hour. The memory
table sets the measured peak memory per pack member (the slope between two pack sizes, one
epoch each, evaluation included) against the estimate a pack is split by
(``member_memory_bytes``).

Run: ``python -m benchmarks.packed_training [--device cuda] [--quick]``
"""

from __future__ import annotations

import argparse
import math
import random
import time
from dataclasses import dataclass
from typing import Any

import torch

from optimizers import OPTIMIZERS
from workers.memory import member_memory_bytes
from workers.pack import train_pack
from workers.specs import MemberSpec, PackSpec, TrialSpec
from workers.train import train_trial

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
}


@dataclass(frozen=True)
class Case:
    """One workload config, how many trials to pack, and how many to time alone."""

    workload: dict[str, Any]
    pack: int
    alone: int


def cases(*, quick: bool) -> list[Case]:
    """The configurations benchmarked (small ones with ``quick``, for a CPU)."""
    if quick:
        return [
            Case({"name": "mlp-digits", "epochs": 2}, pack=16, alone=2),
            Case({"name": "cnn-bn-digits", "epochs": 1}, pack=8, alone=2),
            Case({"name": "char-lm", "epochs": 1, "train_sequences": 128}, pack=4, alone=1),
        ]
    return [
        Case({"name": "mlp-digits", "epochs": 10}, pack=256, alone=8),
        Case({"name": "cnn-bn-digits", "epochs": 5, "channels": 16}, pack=128, alone=6),
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


def members(count: int) -> list[dict[str, Any]]:
    """``count`` trials cycling through every family, lr log-uniform around a family default."""
    rng = random.Random(0)
    families = sorted(OPTIMIZERS)
    return [
        {
            "optimizer": families[i % len(families)],
            "hyperparameters": {
                "lr": BASE_LR[families[i % len(families)]] * 10 ** rng.uniform(-1, 0.5)
            },
            "seed": i,
        }
        for i in range(count)
    ]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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
        train_trial(TrialSpec(workload=workload, data_seed=0, device=device, **trial))
    _sync(torch.device(device))
    return (time.perf_counter() - start) / len(trials)


def peak_bytes(workload: dict[str, Any], trials: list[dict[str, Any]], device: str) -> int:
    """Peak CUDA memory allocated while training ``trials`` as a pack for one epoch."""
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    pack_seconds({**workload, "epochs": 1}, trials, device)
    return torch.cuda.max_memory_allocated(device) - before


def throughput_table(device: str, *, quick: bool) -> str:
    """Trials per hour, packed against alone, as Markdown."""
    lines = [
        "| workload | epochs | K | pack (s) | alone (s/trial) | packed trials/h "
        "| alone trials/h | speed-up |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for case in cases(quick=quick):
        trials = members(case.pack)
        pack_seconds({**case.workload, "epochs": 1}, trials[:2], device)  # warm-ups
        alone_seconds({**case.workload, "epochs": 1}, trials[:1], device)
        packed = pack_seconds(case.workload, trials, device)
        alone = alone_seconds(case.workload, trials[: case.alone], device)
        packed_rate, alone_rate = 3600 * case.pack / packed, 3600 / alone
        lines.append(
            f"| {case.workload['name']} | {case.workload['epochs']} | {case.pack} "
            f"| {packed:.2f} | {alone:.2f} | {packed_rate:,.0f} | {alone_rate:,.0f} "
            f"| {packed_rate / alone_rate:.1f}x |"
        )
    return "\n".join(lines)


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
    lines = [
        "| workload | K small / large | peak small (MiB) | peak large (MiB) "
        "| per member (MiB) | estimate (MiB) | measured / estimate |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for case in cases(quick=quick):
        large = members(case.pack)
        small = large[: max(1, case.pack // 4)]
        peak_small = peak_bytes(case.workload, small, device)
        peak_large = peak_bytes(case.workload, large, device)
        per_member = (peak_large - peak_small) / (len(large) - len(small))
        estimate = member_memory_bytes(case.workload, sorted({t["optimizer"] for t in large}))
        lines.append(
            f"| {case.workload['name']} | {len(small)} / {len(large)} "
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
    args = parser.parse_args()
    print(throughput_table(args.device, quick=args.quick))
    print()
    print(scaling_table(args.device, quick=args.quick))
    if args.device.startswith("cuda"):
        print()
        print(memory_table(args.device, quick=args.quick))


if __name__ == "__main__":
    main()
