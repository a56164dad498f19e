"""One chaos run: a real server, a sweep, a fault at a random time, recovery, an audit.

The server is `optisweep serve` in its own session (so its local Ray goes with it when the
tree is killed); faults are real: SIGKILL of the server's session, SIGKILL of one of its Ray
workers running a pack or a single trial, PostgreSQL connections terminated, SIGSTOP past the
claim lease, a sweep whose handling raises submitted beside healthy ones, the checkpoint
folder replaced by a file.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy.engine import make_url

from tests.chaos.audit import Audit, audit_sweep
from tests.conftest import CHECKPOINT_DIR_VARIABLE, queue_unstartable_sweep, write_plugins
from tests.e2e.conftest import Server

EPOCHS = 12
LEASE_SECONDS = 3.0


TRIALS = 8


def healthy_spec(
    name: str, *, pack: bool = True, trials: int = TRIALS, epochs: int = EPOCHS
) -> dict[str, Any]:
    """A sweep that takes some seconds on 2 CPUs (packed or not) and never fails by itself."""
    steps = 100 if pack else 400  # a pack's step costs more on this tiny workload
    return {
        "name": name,
        "workload": {"name": "quadratic", "epochs": epochs, "steps_per_epoch": steps},
        "space": {"optimizers": ["sgd", "adam"], "lr": {"low": 1e-5, "high": 1e-4, "log": True}},
        "search": {"algorithm": "random", "num_trials": trials, "seed": 3},
        "objective": {"metric": "val_loss", "mode": "min"},
        "resources": {"pack": pack, "max_pack_size": 2, "max_failures": 3},
    }


@dataclass
class Run:
    """A server on a database, and what one case submitted and injected."""

    database_url: str
    folder: Path
    rng: random.Random
    server: Server
    trials: int = TRIALS
    """Trials per healthy sweep."""
    epochs: int = EPOCHS
    """Epochs per trial of a healthy sweep."""
    sweeps: list[int] = field(default_factory=list)
    """Sweeps that must complete."""
    others: list[int] = field(default_factory=list)
    """Sweeps expected to end otherwise (the poison), audited too."""
    faults: int = 0
    must_complete: bool = True

    @property
    def checkpoints(self) -> Path:
        """The server's checkpoint folder."""
        return self.folder / "checkpoints"

    def submit(self, spec: dict[str, Any]) -> int:
        """POST a sweep; its id."""
        response = httpx.post(
            f"{self.server.url}/api/v1/sweeps", json=spec, timeout=30, headers=self.server.headers
        )
        response.raise_for_status()
        sweep_id: int = response.json()["id"]
        return sweep_id

    def sweep(self, sweep_id: int) -> dict[str, Any]:
        """GET a sweep."""
        sweep: dict[str, Any] = httpx.get(
            f"{self.server.url}/api/v1/sweeps/{sweep_id}", timeout=30, headers=self.server.headers
        ).json()
        return sweep

    def epochs_recorded(self) -> int:
        """Epochs recorded so far by the first healthy sweep."""
        trials = httpx.get(
            f"{self.server.url}/api/v1/sweeps/{self.sweeps[0]}/trials",
            params={"limit": 1000},
            timeout=30,
            headers=self.server.headers,
        ).json()["items"]
        return sum(t["epochs_run"] for t in trials)

    def wait_mid_sweep(self, low: float = 0.1, high: float = 0.6) -> None:
        """Until a random share (between ``low`` and ``high``) of the epochs is recorded."""
        target = self.rng.uniform(low, high) * self.trials * self.epochs
        deadline = time.monotonic() + 120
        while self.epochs_recorded() < target and time.monotonic() < deadline:
            time.sleep(0.05)

    def restart(self, downtime: float) -> None:
        """Start the server again on the same database after ``downtime`` seconds."""
        time.sleep(downtime)
        self.server = start_server(self.database_url, self.folder)


def start_server(database_url: str, folder: Path) -> Server:
    """`optisweep serve` on ``database_url``, ready; test plugins importable."""
    env = {
        "PYTHONPATH": write_plugins(folder / "plugins"),
        CHECKPOINT_DIR_VARIABLE: str(folder / "checkpoints"),
        "OPTISWEEP_CLAIM_LEASE_SECONDS": str(LEASE_SECONDS),
    }
    server = Server(database_url=database_url, log=folder / "server.log", env=env)
    server.wait_ready()
    return server


def kill_tree(server: Server) -> None:
    """SIGKILL every process of the server's session: the server and its local Ray."""
    session = server.process.pid
    for pid in _session_processes(session):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    server.process.wait(30)


def _session_processes(session: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getsid(int(entry.name)) == session:
                    pids.append(int(entry.name))
            except (ProcessLookupError, PermissionError):
                continue
    return pids


def _workers_running(server: Server, task: str) -> list[int]:
    """Ray workers of this server's session executing ``task`` (their title is ray::TASK)."""
    found = []
    for pid in _session_processes(server.process.pid):
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
        except OSError:
            continue
        if title.startswith(f"ray::{task}"):
            found.append(pid)
    return found


def kill_server(downtime: float) -> Callable[[Run], None]:
    """The fault: SIGKILL the server's whole tree mid-sweep, start it again after downtime."""

    def inject(run: Run) -> None:
        run.wait_mid_sweep()
        kill_tree(run.server)
        run.faults += 1
        run.restart(downtime)

    return inject


def kill_worker(task: str) -> Callable[[Run], None]:
    """The fault: SIGKILL one Ray worker while it runs ``task`` (run_pack: every job, a single
    trial as a pack of one)."""

    def inject(run: Run) -> None:
        run.wait_mid_sweep()
        deadline = time.monotonic() + 60
        while not (workers := _workers_running(run.server, task)):
            if time.monotonic() > deadline:
                raise AssertionError(f"no worker ran {task}")
            time.sleep(0.02)
        os.kill(run.rng.choice(workers), signal.SIGKILL)
        run.faults += 1

    return inject


def terminate_connections(run: Run) -> None:
    """The fault: PostgreSQL terminates the server's connections, again and again."""
    url = make_url(run.database_url)
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(False)
    run.wait_mid_sweep(0.05, 0.3)
    for _ in range(run.rng.randint(5, 13)):
        time.sleep(run.rng.uniform(0.1, 0.5))
        with psycopg.connect(admin, autocommit=True) as connection:
            terminated = connection.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (url.database,),
            ).fetchone()
        run.faults += 1 if terminated and terminated[0] else 0
        if all(run.sweep(s)["status"] != "running" for s in run.sweeps):
            break


def freeze_server(run: Run) -> None:
    """The fault: SIGSTOP the server process past its claim lease, then SIGCONT."""
    run.wait_mid_sweep()
    run.server.process.send_signal(signal.SIGSTOP)
    run.faults += 1
    time.sleep(LEASE_SECONDS + run.rng.uniform(1.0, 3.0))
    run.server.process.send_signal(signal.SIGCONT)


def poison_beside(run: Run) -> None:
    """The fault: a sweep whose handling raises (its stored range test cannot be used), queued
    beside the healthy ones."""
    run.others.append(queue_unstartable_sweep(run.database_url))
    run.faults += 1


def unwritable_checkpoints(run: Run) -> None:
    """The fault: the checkpoint folder becomes a file mid-sweep (root ignores permissions,
    so a mode change would not stop it); trials then fail, and the sweep must say so."""
    run.wait_mid_sweep()
    # Moved aside in one rename (workers may be writing into it), then a file in its place.
    run.checkpoints.rename(run.folder / f"checkpoints-moved-{time.monotonic_ns()}")
    run.checkpoints.write_text("not a folder")
    run.faults += 1
    run.must_complete = False
    deadline = time.monotonic() + 30
    while httpx.get(f"{run.server.url}/api/v1/readyz", timeout=10).status_code != 503:
        if time.monotonic() > deadline:
            raise AssertionError("/readyz stayed ready with an unwritable checkpoint folder")
        time.sleep(0.2)


@dataclass(frozen=True)
class Case:
    """A fault, the databases it applies to, and the sweep it hits."""

    name: str
    inject: Callable[[Run], None]
    pack: bool = True
    databases: tuple[str, ...] = ("sqlite", "postgresql")


CASES = [
    Case("kill-server-0s", kill_server(0.0)),
    Case("kill-server-2s", kill_server(2.0)),
    Case("kill-server-5s", kill_server(5.0)),
    Case("kill-pack-worker", kill_worker("run_pack")),
    Case("kill-trial-worker", kill_worker("run_pack"), pack=False),  # a pack of one
    Case("pg-terminate", terminate_connections, databases=("postgresql",)),
    Case("sigstop-server", freeze_server),
    Case("poison-sweep", poison_beside),
    Case("checkpoints-unwritable", unwritable_checkpoints),
]
CASES_BY_NAME = {case.name: case for case in CASES}


@dataclass(frozen=True)
class Outcome:
    """What one run found."""

    case: str
    database: str
    faults: int
    audits: list[Audit]
    healthy_completed: bool
    """Every sweep that had to complete did (or, with unwritable checkpoints, the sweep said
    that trials failed and /readyz said why)."""
    seconds: float

    @property
    def ok(self) -> bool:
        """Nothing lost, nothing duplicated, the healthy sweeps completed."""
        return self.healthy_completed and not any(a.lost or a.duplicated for a in self.audits)


@contextlib.contextmanager
def serving(
    database_url: str, folder: Path, *, seed: int, trials: int = TRIALS, epochs: int = EPOCHS
) -> Iterator[Run]:
    """A server on ``database_url`` for one or more cases (healthy sweeps of ``trials`` trials
    of ``epochs`` epochs), stopped at the end."""
    folder.mkdir(parents=True, exist_ok=True)
    server = start_server(database_url, folder)
    run = Run(database_url, folder, random.Random(seed), server, trials=trials, epochs=epochs)
    try:
        yield run
    finally:
        run.server.stop()


def run_case(case: Case, run: Run, *, database: str) -> Outcome:
    """Submit a healthy sweep, inject the case's fault, wait for every sweep, audit."""
    start = time.monotonic()
    run.sweeps, run.others, run.faults, run.must_complete = [], [], 0, True
    if run.checkpoints.is_file():  # an earlier case broke the folder: mend it
        run.checkpoints.unlink()
    spec = healthy_spec(case.name, pack=case.pack, trials=run.trials, epochs=run.epochs)
    run.sweeps.append(run.submit(spec))
    case.inject(run)
    for sweep_id in run.sweeps + run.others:
        deadline = time.monotonic() + 300
        while run.sweep(sweep_id)["status"] in ("pending", "running"):
            if time.monotonic() > deadline:
                raise AssertionError(f"sweep {sweep_id} did not finish within 300 s")
            time.sleep(0.2)
    audits = [
        audit_sweep(run.database_url, sweep_id, epochs=run.epochs)
        for sweep_id in run.sweeps + run.others
    ]
    healthy = audits[: len(run.sweeps)]
    if run.must_complete:
        completed = all(a.completed for a in healthy)
    else:  # honest: failures said, not hidden behind "completed"
        completed = all(a.completed or (a.error and "trials failed" in a.error) for a in healthy)
    if run.others:  # the poison sweep failed, alone
        completed = completed and all(a.status == "failed" for a in audits[len(run.sweeps) :])
    return Outcome(case.name, database, run.faults, audits, completed, time.monotonic() - start)
