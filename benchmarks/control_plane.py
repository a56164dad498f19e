"""Does the control plane's cost per trial stay flat from 10,000 to a million trials?

For each size, a fresh database and a real `optisweep serve` (started and ready before the
clock starts), one sweep submitted over HTTP: random search over sgd and adam on the
``quadratic`` workload, 2 epochs of 5 steps, so the trials themselves cost almost nothing and
what is measured is the service: expanding the sweep, packing, dispatching to Ray, recording
every epoch's metrics, statuses and tallies. Every second it samples the trials finished and
the server process's resident memory; the table gives the cost per trial over the whole run
and over its first and last tenth (a cost that grows with the sweep shows there first).

Once the sweep has ended, every read endpoint a user or the dashboard calls on it (the sweep,
its trials pages, leaderboard, report, comparison, the dashboard's charts and pages) is timed:
the first call, then the p50 and p95 of ``--reads`` more.

Ray Tune's published bookkeeping release test runs 10,000 one-second trials on 16 CPUs in
about 715 s against a 625 s ideal: (715 - 625) / 10,000 = 9 ms of overhead per trial.

Run: ``.venv/bin/python -m benchmarks.control_plane [--sizes 10000,100000,1000000]
[--postgres URL] [--keep]``; ``--keep`` leaves each size's database in place (its URL printed),
and ``--reads-of URL`` times only the reads, on a kept database, with a fresh server (this
checkout's, or another's with ``--source``): the same sweeps read by two versions of the code.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from benchmarks.serving import serve_command, served

SPEC: dict[str, Any] = {
    "name": "control-plane",
    "workload": {"name": "quadratic", "epochs": 2, "steps_per_epoch": 5},
    "space": {"optimizers": ["sgd", "adam"], "lr": {"low": 1e-4, "high": 1e-1, "log": True}},
    "search": {"algorithm": "random", "seed": 0},
    "objective": {"metric": "val_loss", "mode": "min"},
    "resources": {"checkpoint_every": 2},
}
OTHER_TRIALS = 200
"""The second, small sweep the comparison reads beside the large one."""
RAY_TUNE_OVERHEAD_MS = (715 - 625) / 10_000 * 1e3
"""Ray Tune's bookkeeping release test: 10,000 trials, 715 s against a 625 s ideal, 16 CPUs."""


def reads(sweep: int, other: int) -> dict[str, str]:
    """Every read a user or the dashboard's pages make of a sweep (the pages themselves are
    static files): its name and API path."""
    return {
        "sweep": f"/sweeps/{sweep}",
        "sweeps list": "/sweeps?limit=100",
        "trials page": f"/sweeps/{sweep}/trials?limit=100",
        "trials by objective": f"/sweeps/{sweep}/trials?sort=objective&limit=100",
        "trials of a family": f"/sweeps/{sweep}/trials?optimizer=adam&status=completed&limit=100",
        "trial by number": f"/sweeps/{sweep}/trials/{OTHER_TRIALS // 2}",
        "leaderboard": f"/sweeps/{sweep}/leaderboard",
        "report": f"/sweeps/{sweep}/report",
        "comparison": f"/comparisons?sweeps={sweep},{other}",
        "best so far": f"/sweeps/{sweep}/best-so-far",
        "curves": f"/sweeps/{sweep}/curves?max_points=200&limit=300",
        "objectives": f"/sweeps/{sweep}/objectives?max_points=2000",
        "lr sensitivity": f"/sweeps/{sweep}/lr-sensitivity?max_points=500",
        "parallel": f"/sweeps/{sweep}/parallel?limit=1000",
        "importance": f"/sweeps/{sweep}/importance",
    }


@dataclass
class Run:
    """One size's measurements."""

    trials: int
    status: str = ""
    wall: float = 0.0
    submitted: float = 0.0
    samples: list[tuple[float, int, float]] = field(default_factory=list)
    """(seconds since the POST, trials finished, server RSS MB)."""
    latencies: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    """Per read: first call, p50, p95 of the rest, in ms."""

    def window_ms(self, low: float, high: float) -> float:
        """Wall ms per trial while the finished trials went from ``low`` to ``high`` (fractions)."""

        def at(fraction: float) -> float:
            target = fraction * self.trials
            return next((t for t, done, _ in self.samples if done >= target), self.wall)

        start = 0.0 if low == 0 else at(low)
        return (at(high) - start) / ((high - low) * self.trials) * 1e3

    def rss(self, fraction: float) -> float:
        """Server RSS when ``fraction`` of the trials had finished."""
        target = fraction * self.trials
        return next((m for _, done, m in self.samples if done >= target), self.samples[-1][2])


def rss_mb(pid: int) -> float:
    """A process's resident memory in MB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _finished(counts: dict[str, int]) -> int:
    return sum(counts.values()) - counts.get("pending", 0) - counts.get("running", 0)


def _wait(api: str, headers: dict[str, str], sweep_id: int) -> dict[str, Any]:
    while True:
        state: dict[str, Any] = httpx.get(
            f"{api}/sweeps/{sweep_id}", headers=headers, timeout=60
        ).json()
        if state["status"] not in ("pending", "running"):
            return state
        time.sleep(1.0)


def time_reads(
    api: str, headers: dict[str, str], paths: dict[str, str], repeats: int
) -> dict[str, tuple[float, float, float]]:
    """Each read's first call, then the p50 and p95 of ``repeats`` more, in ms; a read that
    does not answer 200 fails the benchmark."""
    found = {}
    with httpx.Client(headers=headers, timeout=300) as client:
        for name, path in paths.items():
            url, times = f"{api}{path}", []
            for _ in range(repeats + 1):
                start = time.perf_counter()
                answer = client.get(url)
                times.append((time.perf_counter() - start) * 1e3)
                if answer.status_code != 200:
                    raise RuntimeError(f"{name}: {answer.status_code} {answer.text[:200]}")
            rest = sorted(times[1:])
            p95 = rest[min(len(rest) - 1, round(0.95 * (len(rest) - 1)))]
            found[name] = (times[0], statistics.median(rest), p95)
    return found


def run(database_url: str, trials: int, folder: Path, *, repeats: int) -> Run:
    """Serve, submit, sample until done, then time the reads."""
    measured = Run(trials)
    with served(
        database_url,
        folder,
        OPTISWEEP_CHECKPOINT_DIR=str(folder / "checkpoints"),
        OPTISWEEP_MAX_TRIALS=str(max(trials, OTHER_TRIALS)),
    ) as server:
        api, headers = server.api, server.headers
        spec = {**SPEC, "search": {**SPEC["search"], "num_trials": trials}}
        start = time.perf_counter()
        sweep = httpx.post(f"{api}/sweeps", json=spec, headers=headers, timeout=3600).json()
        measured.submitted = time.perf_counter() - start
        print(f"{trials:,} trials: submitted in {measured.submitted:.1f} s", flush=True)
        every = max(1, round(trials / 20))
        shown = 0
        while True:
            time.sleep(1.0)
            now = time.perf_counter() - start
            state = httpx.get(f"{api}/sweeps/{sweep['id']}", headers=headers, timeout=60).json()
            done = _finished(state["trial_counts"])
            measured.samples.append((now, done, rss_mb(server.pid)))
            if done >= shown + every or state["status"] not in ("pending", "running"):
                shown = done
                memory = measured.samples[-1][2]
                print(f"  {now:7.0f} s {done:10,} done  RSS {memory:.0f} MB", flush=True)
            if state["status"] not in ("pending", "running"):
                break
        measured.wall = time.perf_counter() - start
        measured.status = state["status"]
        small = {**SPEC, "name": "control-plane-small"}
        small["search"] = {**SPEC["search"], "num_trials": OTHER_TRIALS}
        other = httpx.post(f"{api}/sweeps", json=small, headers=headers, timeout=60).json()
        _wait(api, headers, other["id"])
        measured.latencies = time_reads(api, headers, reads(sweep["id"], other["id"]), repeats)
    return measured


def reads_again(database_url: str, folder: Path, *, repeats: int, source: Path | None) -> Run:
    """The reads alone, on a kept database: a token made in it (``optisweep db token``), a
    fresh server (``source``: another checkout's), its largest sweep and its 200-trial one."""
    environment = {**os.environ, "OPTISWEEP_TOKEN_FILE": str(folder / "token")}
    command, cwd = serve_command(source)
    subprocess.run(
        [*command, "db", "token", "--database-url", database_url],
        env={**environment, "PYTHONPATH": str(cwd)} if cwd else environment,
        cwd=cwd,
        check=True,
        capture_output=True,
    )
    with served(database_url, folder, source=source) as server:
        listed = httpx.get(
            f"{server.api}/sweeps?limit=100", headers=server.headers, timeout=60
        ).json()
        sweeps = sorted(listed["items"], key=lambda s: sum(s["trial_counts"].values()))
        large, small = sweeps[-1], sweeps[0]
        measured = Run(sum(large["trial_counts"].values()), status=large["status"])
        reading = threading.Event()
        reading.set()

        def sample() -> None:  # the server's RSS while it answers
            while reading.is_set():
                measured.samples.append((0.0, measured.trials, rss_mb(server.pid)))
                time.sleep(0.2)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            measured.latencies = time_reads(
                server.api, server.headers, reads(large["id"], small["id"]), repeats
            )
        finally:
            reading.clear()
            sampler.join()
    print(
        f"{measured.trials:,} trials: server RSS {measured.samples[0][2]:.0f} MB before the "
        f"reads, peak {max(m for _, _, m in measured.samples):.0f} MB during them"
    )
    return measured


@contextmanager
def database(postgres: str | None, folder: Path, *, keep: bool = False) -> Iterator[str]:
    """A fresh SQLite file, or a fresh database on the PostgreSQL server ``postgres``
    (dropped afterwards unless ``keep``)."""
    if postgres is None:
        yield f"sqlite:///{folder / f'control-{uuid.uuid4().hex[:8]}.db'}"
        return
    import psycopg

    name = f"optisweep_control_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"{postgres.rsplit('/', 1)[0]}/{name}"
    try:
        yield url
    finally:
        if keep:
            print(f"kept: {url}", flush=True)
        else:
            with psycopg.connect(postgres, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def print_tables(runs: list[Run]) -> None:
    """The cost and memory table, then the reads' latencies at each size."""
    base = runs[0]
    print(
        "\n| trials | status | submit s | wall s | ms/trial (whole) | first 10% | last 10% "
        "| whole / smallest's | RSS MB at 10%, 50%, end (peak) |"
    )
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in runs:
        whole = r.wall / r.trials * 1e3
        print(
            f"| {r.trials:,} | {r.status} | {r.submitted:.1f} | {r.wall:.0f} | {whole:.2f} "
            f"| {r.window_ms(0, 0.1):.2f} | {r.window_ms(0.9, 1.0):.2f} "
            f"| {whole / (base.wall / base.trials * 1e3):.2f} "
            f"| {r.rss(0.1):.0f}, {r.rss(0.5):.0f}, {r.samples[-1][2]:.0f} "
            f"({max(m for _, _, m in r.samples):.0f}) |"
        )
    print_reads(runs)
    per_trial = runs[-1].wall / runs[-1].trials * 1e3
    print(
        f"\nat {runs[-1].trials:,} trials: {per_trial:.2f} ms per trial ({os.cpu_count()} CPUs, "
        f"the trials' own compute included) vs {RAY_TUNE_OVERHEAD_MS:.0f} ms for Ray Tune's "
        f"release test (16 CPUs)"
    )


def print_reads(runs: list[Run]) -> None:
    """The reads' latencies at each size."""
    header = " | ".join(f"{r.trials:,}: first, p50, p95 ms" for r in runs)
    print(f"\n| read | {header} |")
    print("| --- |" + " ---: |" * len(runs))
    for name in runs[0].latencies:
        cells = " | ".join("{:.0f}, {:.0f}, **{:.0f}**".format(*r.latencies[name]) for r in runs)
        print(f"| {name} | {cells} |")


def main() -> None:
    """Each size on a fresh database and server, on SQLite or on PostgreSQL with --postgres."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000", help="trial counts, comma-separated")
    parser.add_argument("--postgres", default=None, help="a server URL, e.g. postgresql://...")
    parser.add_argument("--reads", type=int, default=20, help="timed calls of each read")
    parser.add_argument("--keep", action="store_true", help="keep each size's PostgreSQL database")
    parser.add_argument("--reads-of", default=None, help="only time the reads of this database")
    parser.add_argument("--source", type=Path, default=None, help="with --reads-of: a checkout")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    runs = []
    with tempfile.TemporaryDirectory() as name:
        if args.reads_of is not None:
            read = reads_again(args.reads_of, Path(name), repeats=args.reads, source=args.source)
            print_reads([read])
            return
        for size in sizes:
            folder = Path(name) / str(size)
            folder.mkdir()
            with database(args.postgres, folder, keep=args.keep) as url:
                runs.append(run(url, size, folder, repeats=args.reads))
    print_tables(runs)


if __name__ == "__main__":
    main()
