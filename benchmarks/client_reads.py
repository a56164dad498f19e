"""How fast does the Python client read a sweep's learning curves and compare sweeps, against
what a user would do without the bulk endpoints?

A fresh `optisweep serve` (SQLite) runs three sweeps through ``optisweep.Client``: the reference
sweep (64 trials x 20 epochs of an MLP on the digits), a CNN on the digits and rosenbrock. Then,
each timed as the first call on the fresh server and as the median of ``--repeats`` warm calls:

- the curves of the reference sweep: ``sweep.metrics()`` (GET /sweeps/{id}/metrics, 10,000
  values a page) against one GET /trials/{id}/metrics per trial (the per-trial endpoint);
- time to target across the three sweeps: ``client.compare(...)`` (GET /comparisons) against
  the same answer computed in pandas from ``sweep.metrics()`` and ``sweep.trials()`` (the
  strongest fair alternative: bulk reads, vectorised).

Run: ``.venv/bin/python -m benchmarks.client_reads [--repeats 5]``
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optisweep
from benchmarks.serving import served

REFERENCE = Path(__file__).resolve().parent.parent / "examples" / "digits-optimizers.yaml"
OTHERS: list[dict[str, Any]] = [
    {
        "name": "bench-cnn",
        "workload": {"name": "cnn-digits", "epochs": 4, "batch_size": 64},
        "space": {"optimizers": ["sgd", "momentum", "adam"], "lr": {"values": [1e-2, 3e-2, 1e-1]}},
        "search": {"algorithm": "grid"},
        "objective": {"metric": "val_accuracy", "mode": "max"},
    },
    {
        "name": "bench-rosenbrock",
        "workload": {"name": "rosenbrock", "epochs": 20, "steps_per_epoch": 50},
        "space": {"optimizers": ["sgd", "momentum", "adam"], "lr": {"low": 1e-4, "high": 1e-2}},
        "search": {"algorithm": "random", "num_trials": 24},
        "objective": {"metric": "val_loss", "mode": "min"},
    },
]


def timed(call: Callable[[], Any], repeats: int) -> tuple[float, float, Any]:
    """The first call's seconds, the median of ``repeats`` more, and the first call's answer."""
    started = time.perf_counter()
    answer = call()
    first = time.perf_counter() - started
    warm = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        warm.append(time.perf_counter() - started)
    return first, statistics.median(warm), answer


def per_trial_curves(client: optisweep.Client, sweep: optisweep.Sweep) -> int:
    """Every metric value of the sweep, one request per trial; how many values."""
    values = 0
    for trial in sweep.trials():
        series = client.request("GET", f"/trials/{trial.id}/metrics")["series"]
        values += sum(len(s["values"]) for s in series)
    return values


def pandas_time_to_target(sweeps: list[optisweep.Sweep], targets: dict[int, float]) -> Any:
    """Per sweep and family: the fewest epochs and seconds to the sweep's target, in pandas."""
    import pandas

    frames = []
    for sweep in sweeps:
        metric = sweep.info.spec["objective"]["metric"]
        mode = sweep.info.spec["objective"]["mode"]
        values = sweep.metrics(name=metric).to_pandas()
        seconds = sweep.metrics(name="time_seconds").to_pandas()
        trials = sweep.trials().to_pandas()[["id", "optimizer"]]
        joined = values.merge(seconds, on=["trial_id", "step"], suffixes=("", "_s"))
        joined = joined.merge(trials, left_on="trial_id", right_on="id")
        hit = (
            joined["value"] >= targets[sweep.id]
            if mode == "max"
            else joined["value"] <= targets[sweep.id]
        )
        reached = joined[hit].groupby(["optimizer", "trial_id"]).first()
        best = reached.groupby("optimizer").agg(epochs=("step", "min"), seconds=("value_s", "min"))
        frames.append(best.assign(sweep=sweep.id))
    return pandas.concat(frames)


def main() -> None:
    """Run the three sweeps on a fresh server, time the reads, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as folder,
        served(f"sqlite:///{folder}/bench.db", Path(folder)) as server,
    ):
        token = server.headers["Authorization"].removeprefix("Bearer ")
        with optisweep.Client(server.api.removesuffix("/api/v1"), token, timeout=600) as client:
            sweeps = [client.submit(REFERENCE), *(client.submit(spec) for spec in OTHERS)]
            for sweep in sweeps:
                sweep.wait(progress=False)
            reference = sweeps[0]
            rows = []
            bulk = timed(lambda: len(reference.metrics()), args.repeats)
            looped = timed(lambda: per_trial_curves(client, reference), args.repeats)
            assert bulk[2] == looped[2], (bulk[2], looped[2])
            rows.append((f"curves of 64 trials ({bulk[2]:,} values)", bulk, looped))
            ids = [s.id for s in sweeps]
            compared = timed(lambda: client.compare(ids), args.repeats)
            targets = {s.sweep_id: s.target for s in compared[2].sweeps}
            in_pandas = timed(lambda: pandas_time_to_target(sweeps, targets), args.repeats)
            rows.append(("time to target, 3 sweeps", compared, in_pandas))
    print(
        f"client reads on {platform.processor() or platform.machine()}, {args.repeats} warm repeats"
    )
    heads = ("ours first", "ours warm", "alt first", "alt warm", "alt/ours warm")
    print(f"{'question':<40} " + " ".join(f"{head:>13}" for head in heads))
    for question, ours, alternative in rows:
        times = (ours[0], ours[1], alternative[0], alternative[1])
        cells = " ".join(f"{t:>12.3f}s" for t in times)
        print(f"{question:<40} {cells} {alternative[1] / ours[1]:>12.1f}x")
    print("ours: sweep.metrics() / client.compare()")
    print("alt: one request per trial / pandas on bulk reads")


if __name__ == "__main__":
    main()
