"""What do users' workloads cost: a Dataset against in-memory tensors, and does packing still
pay for a user's own model?

The model is ``examples/own-model`` (a CNN with BatchNorm on scikit-learn's digits upscaled to
16x16, imported by its entrypoint, as a worker does). Three runs of the same K trials (mixed
families), one epoch each, on this machine's CPU:

- packed, data as in-memory tensors (the fast path: batches are index gathers);
- packed, the same data through the example's ``Dataset`` (a DataLoader collates each batch
  from per-item ``__getitem__`` calls; no augmentation, so the two compute the same thing);
- one trial at a time, through the Dataset (what a user's model costs without packing).

Run: ``python -m benchmarks.user_workloads [--trials K] [--epochs E]``
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from optisweep.workers.specs import MemberSpec, PackSpec
from optisweep.workers.train import train_pack, train_trial
from optisweep.workers.workloads import Built

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "own-model"
FAMILIES = [("adam", 3e-3), ("momentum", 3e-2), ("rmsprop", 1e-3), ("sgd", 0.1)]


class AsTensors:
    """The example's workload with its data gathered into tensors (the loop's fast path)."""

    def __init__(self) -> None:
        # examples/own-model, on the path as a worker's working_dir puts it
        self.inner = importlib.import_module("model").workload
        self.name = "digits16-tensors"
        self.packable = True
        self.metric_names = self.inner.metric_names
        self.config_model = self.inner.config_model

    def build(self, config: object, *, seed: int, device: torch.device) -> Built:
        """The example's model and data, the Datasets stacked into tensors on ``device``."""
        built = self.inner.build(config, seed=seed, device=device)

        def stacked(dataset: object) -> tuple[torch.Tensor, torch.Tensor]:
            images = dataset.images.to(device)  # type: ignore[attr-defined]
            return images, dataset.labels.to(device)  # type: ignore[attr-defined]

        return Built(
            model=built.model,
            train=stacked(built.train),
            val=stacked(built.val),
            loss_fn=built.loss_fn,
            metrics=built.metrics,
        )


def _members(k: int) -> list[MemberSpec]:
    return [
        MemberSpec(optimizer=name, hyperparameters={"lr": lr * (1 + i // 4)}, seed=i)
        for i, (name, lr) in ((i, FAMILIES[i % len(FAMILIES)]) for i in range(k))
    ]


def _timed(run: Callable[[], None], repeats: int) -> float:
    """The median wall time of ``repeats`` runs."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(EXAMPLE))
    global TENSORS
    TENSORS = AsTensors()
    config = {"epochs": args.epochs, "channels": 8, "dropout": 0.0, "shift": 0}
    dataset = {"entrypoint": "model:workload", **config}
    tensors = {"entrypoint": f"{__name__}:TENSORS", **config}
    members = _members(args.trials)

    def pack(workload: dict[str, object]) -> None:
        train_pack(PackSpec(workload=workload, members=members, data_seed=0, device="cpu"))

    def alone() -> None:
        for m in members:
            train_trial(
                PackSpec.single(
                    workload=dataset,
                    optimizer=m.optimizer,
                    hyperparameters=m.hyperparameters,
                    seed=m.seed,
                    data_seed=0,
                    device="cpu",
                )
            )

    pack(tensors)  # warm both paths: imports, torch.optim's first optimizer, allocations
    alone()
    packed_tensors = _timed(lambda: pack(tensors), args.repeats)
    packed_dataset = _timed(lambda: pack(dataset), args.repeats)
    one_at_a_time = _timed(alone, args.repeats)
    k, e = args.trials, args.epochs
    print(
        f"own-model (CNN + BatchNorm, 16x16 digits), K={k} trials x {e} epoch(s), "
        f"CPU, {torch.get_num_threads()} threads"
    )
    print("| run | seconds | trials per hour | vs packed tensors |")
    print("| --- | ---: | ---: | ---: |")
    for name, seconds in (
        ("packed, tensors", packed_tensors),
        ("packed, Dataset", packed_dataset),
        ("one at a time, Dataset", one_at_a_time),
    ):
        print(
            f"| {name} | {seconds:.2f} | {3600 * k / seconds:,.0f} | "
            f"{seconds / packed_tensors:.2f}x |"
        )


TENSORS: AsTensors | None = None
"""The tensors variant, made once the example is on the path."""

if __name__ == "__main__":
    main()
