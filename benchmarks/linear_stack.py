"""Does a Linear stack as batched matrix products pay, against vmap over the members' models?

A pack of the reference MLP (mlp-digits, 64-128-10), seven families, trained for 5 epochs at
batch 64 in one process with 1 thread: once through vmap(functional_call) (the path every
model can take) and once through ``workers.stacking.stacked_forward`` (batched matmuls,
taken when the model is an nn.Sequential of Linear layers and elementwise activations).
Alternating runs, best of 3 each, for 32 and 64 members.

Run: ``.venv/bin/python -m benchmarks.linear_stack``
"""

from __future__ import annotations

import os
import platform
import time

import torch

import workers.stacking as stacking
from workers.pack import train_pack
from workers.specs import MemberSpec, PackSpec

FAMILIES = ("sgd", "momentum", "adagrad", "adadelta", "rmsprop", "adam", "adamax")


def seconds(members: int, *, batched: bool) -> float:
    """Wall seconds of one pack's training, through the batched path or through vmap."""
    found = stacking.linear_stack
    if not batched:
        stacking.linear_stack = lambda base: None
    try:
        spec = PackSpec(
            workload={"name": "mlp-digits", "epochs": 5, "batch_size": 64},
            members=[
                MemberSpec(optimizer=FAMILIES[k % 7], hyperparameters={"lr": 1e-3}, seed=k)
                for k in range(members)
            ],
            data_seed=0,
            device="cpu",
        )
        start = time.perf_counter()
        train_pack(spec)
        return time.perf_counter() - start
    finally:
        stacking.linear_stack = found


def main() -> None:
    """Print the table."""
    torch.set_num_threads(1)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    seconds(8, batched=True)  # warm-up
    print(f"{'members':>8} {'vmap s':>8} {'batched s':>10} {'vmap / batched':>15}")
    for members in (32, 64):
        runs: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(3):
            for batched in runs:
                runs[batched].append(seconds(members, batched=batched))
        through_vmap, through_matmuls = min(runs[False]), min(runs[True])
        ratio = through_vmap / through_matmuls
        print(f"{members:8} {through_vmap:8.2f} {through_matmuls:10.2f} {ratio:15.2f}")


if __name__ == "__main__":
    main()
