"""What does stepping lr schedules per optimizer step cost a pack, against per epoch?

A 16-member pack (four families) of mlp-digits at batch size 32 (45 steps an epoch), 3 epochs,
every member on a cosine schedule with a 5-count warm-up: counted per epoch (the multipliers
change 3 times) or per step (135 times: the PopulationOptimizer reads them from a block it
computes 64 steps ahead). Alternating runs, best of 5 each, 2 threads.

Run: ``.venv/bin/python -m benchmarks.schedule_overhead``
"""

from __future__ import annotations

import os
import platform
import time

import torch

from optisweep.workers.specs import MemberSpec, PackSpec
from optisweep.workers.train import train_pack

FAMILIES = ("adam", "sgd", "rmsprop", "adamax")


def seconds(per: str) -> float:
    """Wall seconds of one pack's training with schedules counted ``per``."""
    schedule = {"kind": "cosine", "per": per, "warmup": 5}
    members = [
        MemberSpec(optimizer=name, hyperparameters={"lr": 1e-3}, seed=k, schedule=schedule)
        for k, name in enumerate(FAMILIES * 4)
    ]
    spec = PackSpec(
        workload={"name": "mlp-digits", "epochs": 3, "batch_size": 32},
        members=members,
        data_seed=0,
        device="cpu",
    )
    start = time.perf_counter()
    train_pack(spec)
    return time.perf_counter() - start


def main() -> None:
    """Print the table."""
    torch.set_num_threads(2)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    seconds("epoch")  # warm-up: imports, the digits, allocator
    runs: dict[str, list[float]] = {"epoch": [], "step": []}
    for _ in range(5):
        for per in runs:
            runs[per].append(seconds(per))
    epoch, step = min(runs["epoch"]), min(runs["step"])
    print(f"{'schedules counted per':24} {'best s':>8}")
    print(f"{'epoch (3 updates)':24} {epoch:8.3f}")
    print(f"{'step (135 updates)':24} {step:8.3f}")
    print(f"per step / per epoch: {step / epoch:.3f}")


if __name__ == "__main__":
    main()
