"""How much does the control plane cost per trial? A 10,000-trial sweep of a tiny workload.

A real `optisweep serve` (started and ready before the clock starts) on a fresh SQLite file
(or PostgreSQL with --postgres URL), one sweep submitted over HTTP: random search over sgd and
adam on the ``quadratic`` workload, 2 epochs of 5 steps, so the trials themselves cost almost
nothing and what is measured is the service: expanding the sweep, packing, dispatching to Ray,
recording every epoch's metrics, statuses and tallies. Every second the table samples the
trials finished, the metric rows written and the server process's resident memory.

Ray Tune's published bookkeeping release test runs 10,000 one-second trials on 16 CPUs in
about 715 s against a 625 s ideal: (715 - 625) / 10,000 = 9 ms of overhead per trial, with
16 CPUs to hide it on. Here the overhead per trial is the whole wall time divided by the
trials, on this machine's CPUs.

Run: ``.venv/bin/python -m benchmarks.control_plane [--trials 10000] [--postgres URL]``
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from benchmarks.serving import served
from optisweep.service.db.session import make_engine

SPEC: dict[str, Any] = {
    "name": "control-plane",
    "workload": {"name": "quadratic", "epochs": 2, "steps_per_epoch": 5},
    "space": {"optimizers": ["sgd", "adam"], "lr": {"low": 1e-4, "high": 1e-1, "log": True}},
    "search": {"algorithm": "random", "seed": 0},
    "objective": {"metric": "val_loss", "mode": "min"},
    "resources": {"checkpoint_every": 2},
}
RAY_TUNE_OVERHEAD_MS = (715 - 625) / 10_000 * 1e3
"""Ray Tune's bookkeeping release test: 10,000 trials, 715 s against a 625 s ideal, 16 CPUs."""


def rss_mb(pid: int) -> float:
    """A process's resident memory in MB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run(database_url: str, trials: int, folder: Path) -> None:
    """Serve, submit, sample until done, print the table and the summary."""
    engine = make_engine(database_url)
    checkpoints = str(folder / "checkpoints")
    with served(database_url, folder, OPTISWEEP_CHECKPOINT_DIR=checkpoints) as server:
        api, headers = server.api, server.headers
        spec = {**SPEC, "search": {**SPEC["search"], "num_trials": trials}}
        start = time.perf_counter()
        sweep = httpx.post(f"{api}/sweeps", json=spec, headers=headers, timeout=300).json()
        submitted = time.perf_counter() - start
        print(f"submitted {trials:,} trials in {submitted:.1f} s")
        print(
            f"{'t s':>6} {'done':>7} {'trials/s':>9} {'metric rows':>12} {'rows/s':>8}"
            f" {'RSS MB':>7}"
        )
        last_done, last_rows, last_t, peak = 0, 0, 0.0, 0.0
        while True:
            time.sleep(1.0)
            now = time.perf_counter() - start
            state = httpx.get(f"{api}/sweeps/{sweep['id']}", headers=headers, timeout=60).json()
            counts = state["trial_counts"]
            done = sum(counts.values()) - counts.get("pending", 0) - counts.get("running", 0)
            with engine.connect() as db:
                rows = int(db.execute(text("SELECT count(*) FROM metrics")).scalar() or 0)
            memory = rss_mb(server.pid)
            peak = max(peak, memory)
            span = now - last_t
            print(
                f"{now:6.0f} {done:7,} {(done - last_done) / span:9.0f} {rows:12,} "
                f"{(rows - last_rows) / span:8.0f} {memory:7.0f}"
            )
            last_done, last_rows, last_t = done, rows, now
            if state["status"] not in ("pending", "running"):
                break
        wall = time.perf_counter() - start
        print(
            f"\n{state['status']}: {trials:,} trials in {wall:.1f} s = {trials / wall:.0f} "
            f"trials/s, {rows:,} metric rows ({rows / wall:.0f}/s), peak server RSS {peak:.0f} MB"
        )
        per_trial = wall / trials * 1e3
        print(
            f"overhead per trial: {per_trial:.1f} ms here ({os.cpu_count()} CPUs, the trials' "
            f"own compute included) vs {RAY_TUNE_OVERHEAD_MS:.0f} ms for Ray Tune's release "
            f"test (16 CPUs): {per_trial / RAY_TUNE_OVERHEAD_MS:.2f}x"
        )
    engine.dispose()


def main() -> None:
    """One run on SQLite, or on PostgreSQL with --postgres."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--postgres", default=None, help="a server URL, e.g. postgresql://...")
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        if args.postgres is None:
            run(f"sqlite:///{folder / 'control.db'}", args.trials, folder)
            return
        import psycopg

        database = f"optisweep_control_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(args.postgres, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{database}"')
        try:
            run(f"{args.postgres.rsplit('/', 1)[0]}/{database}", args.trials, folder)
        finally:
            with psycopg.connect(args.postgres, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


if __name__ == "__main__":
    main()
