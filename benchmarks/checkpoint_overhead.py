"""What do per-epoch checkpoints cost a pack, against the same pack without checkpoints?

The reference sweep's 64 configurations (examples/digits-optimizers.yaml) trained as one pack
in this process, each member writing its checkpoint file (model + optimizer state, written to
a temporary name and renamed) every epoch, every 5 epochs, or never. Runs alternate so that
drift in the machine's speed hits every variant alike; the table shows the median.

Run: ``.venv/bin/python -m benchmarks.checkpoint_overhead [--trials 64] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.sweep_throughput import reference_spec, trial_specs
from optisweep.workers.checkpoint import Checkpoint, save_checkpoint
from optisweep.workers.specs import MemberSpec, PackSpec
from optisweep.workers.train import train_pack


def pack_spec(trials: int) -> PackSpec:
    """The reference sweep's first ``trials`` configurations as one pack."""
    specs = trial_specs(reference_spec(trials))
    return PackSpec(
        workload=specs[0]["workload"],
        members=[
            MemberSpec(
                optimizer=s["optimizer"], hyperparameters=s["hyperparameters"], seed=s["seed"]
            )
            for s in specs
        ],
        data_seed=specs[0]["data_seed"],
        device="cpu",
    )


def run(spec: PackSpec, every: int | None, folder: Path) -> tuple[float, int]:
    """Seconds to train the pack, and bytes of checkpoint files it left."""

    def save(k: int, ckpt: Checkpoint) -> None:
        save_checkpoint(folder / f"trial-{k}.pt", ckpt)

    start = time.perf_counter()
    train_pack(
        spec,
        checkpoint=save if every is not None else None,
        checkpoint_every=every or 1,
    )
    seconds = time.perf_counter() - start
    return seconds, sum(path.stat().st_size for path in folder.glob("*.pt"))


def main() -> None:
    """Time each variant ``repeats`` times, interleaved, and print the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)  # one Ray task's share of this machine, as in a sweep
    spec = pack_spec(args.trials)
    variants: dict[str, int | None] = {"none": None, "every 5 epochs": 5, "every epoch": 1}
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    sizes: dict[str, int] = {}
    for _ in range(args.repeats):
        for name, every in variants.items():
            with tempfile.TemporaryDirectory() as folder:
                elapsed, size = run(spec, every, Path(folder))
            seconds[name].append(elapsed)
            sizes[name] = size
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, CPU")
    print(f"{args.trials}-member pack, mlp-digits, 20 epochs, 1 torch thread")
    print(f"{'checkpoints':16} {'median s':>9} {'x none':>7} {'files MB':>9}")
    baseline = statistics.median(seconds["none"])
    for name in variants:
        median = statistics.median(seconds[name])
        print(f"{name:16} {median:9.2f} {median / baseline:7.2f} {sizes[name] / 2**20:9.1f}")


if __name__ == "__main__":
    main()
