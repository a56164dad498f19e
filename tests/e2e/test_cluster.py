"""A Ray cluster started as a deployment starts it (`ray start`), with token authentication.

Two nodes on this machine: `ray start --head` and `ray start --address`, each in its own
session so that teardown kills exactly their processes (``ray stop`` would kill every Ray on
the machine, the test session's own included). HOME points at a private folder and the token
comes from RAY_AUTH_TOKEN, so nothing touches the user's ~/.ray.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import select

from optisweep.service.db.session import make_engine
from optisweep.service.trials.models import Trial
from tests.conftest import REPO_ROOT, clean_environment, wait_until
from tests.e2e.conftest import Server
from tests.service.conftest import free_port

pytestmark = pytest.mark.slow  # make test runs it; make test-fast leaves it out

RAY = str(Path(shutil.which("optisweep") or ".venv/bin/optisweep").with_name("ray"))


@dataclass(frozen=True)
class Cluster:
    """Where the cluster listens and the environment a driver needs to join it."""

    address: str
    env: dict[str, str]
    dashboard: str
    """The head's dashboard, where Ray's job server listens (``ray job submit --address``)."""


def _ray_start(args: list[str], env: dict[str, str], sessions: list[int]) -> None:
    process = subprocess.Popen(
        [RAY, "start", *args, "--disable-usage-stats"],
        env=env,
        start_new_session=True,  # its daemons and workers keep this session id
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    sessions.append(process.pid)
    output, _ = process.communicate(timeout=180)
    assert process.returncode == 0, output


def _members(sessions: set[int]) -> list[int]:
    """Live processes of these sessions (Ray workers leave the group but keep the session)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.getsid(int(entry)) not in sessions:
                continue
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (ProcessLookupError, FileNotFoundError, PermissionError):
            continue
        if state != "Z":
            pids.append(int(entry))
    return pids


def _kill_sessions(sessions: set[int], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while pids := _members(sessions):
        assert time.monotonic() < deadline, f"Ray processes still alive: {pids}"
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Cluster]:
    """A head node (1 CPU, the job server on) and a worker node (2 CPUs) on this machine,
    token auth on."""
    # A short root: Ray's socket paths under --temp-dir must stay within 107 bytes.
    root = tempfile.mkdtemp(prefix="rc", dir="/tmp")
    env = clean_environment(HOME=root, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
    port, dashboard_port = free_port(), free_port()
    address = f"127.0.0.1:{port}"
    sessions: list[int] = []
    try:
        _ray_start(
            [
                "--head",
                f"--port={port}",
                f"--ray-client-server-port={free_port()}",
                "--include-dashboard=true",  # the job server (ray job submit) lives there
                "--dashboard-host=127.0.0.1",
                f"--dashboard-port={dashboard_port}",
                f"--dashboard-agent-listen-port={free_port()}",
                f"--temp-dir={root}/head",
                "--num-cpus=1",
            ],
            env,
            sessions,
        )
        _ray_start(
            [
                f"--address={address}",
                f"--temp-dir={root}/worker",
                "--num-cpus=2",
                f"--dashboard-agent-listen-port={free_port()}",
            ],
            env,
            sessions,
        )
        yield Cluster(address=address, env=env, dashboard=f"http://127.0.0.1:{dashboard_port}")
    finally:
        _kill_sessions(set(sessions))
        shutil.rmtree(root, ignore_errors=True)


def test_a_server_pointed_at_a_cluster_runs_trials_on_every_node(
    ray_cluster: Cluster, tmp_path: Path
) -> None:
    join = {key: ray_cluster.env[key] for key in ("HOME", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    server = Server(
        database_url=f"sqlite:///{tmp_path / 'cluster.db'}",
        log=tmp_path / "server.log",
        env={**join, "OPTISWEEP_RAY_ADDRESS": ray_cluster.address},
    )
    try:
        server.wait_ready()
        api = f"{server.url}/api/v1"
        ready = httpx.get(f"{api}/readyz", timeout=30, headers=server.headers).json()
        assert ready["cpus"] == 3.0  # the cluster's 1 + 2 CPUs, not a local Ray of this machine
        spec = {
            "name": "cluster",
            "workload": {"name": "rosenbrock", "epochs": 5, "steps_per_epoch": 1000},
            "space": {"optimizers": ["sgd", "adam"], "lr": {"low": 1e-5, "high": 1e-4}},
            "search": {"algorithm": "random", "num_trials": 9, "seed": 3},
            "objective": {"metric": "val_loss", "mode": "min"},
            # Five tasks of a second or more: a node still warming up (importing torch on a
            # busy machine) cannot leave all of them to the other.
            "resources": {"max_pack_size": 2},
        }
        sweep_id = httpx.post(
            f"{api}/sweeps", json=spec, timeout=30, headers=server.headers
        ).json()["id"]
        sweep = wait_until(
            lambda: (
                (
                    s := httpx.get(
                        f"{api}/sweeps/{sweep_id}", timeout=30, headers=server.headers
                    ).json()
                )["status"]
                not in ("pending", "running")
                and s
            ),
            timeout=240,
            what="the cluster sweep to finish",
            every=0.5,
        )
        assert sweep["status"] == "completed"
        trials = httpx.get(
            f"{api}/sweeps/{sweep_id}/trials", timeout=30, headers=server.headers
        ).json()["items"]
        assert len(trials) == 9
        assert {t["status"] for t in trials} == {"completed"}
        assert len({t["node_id"] for t in trials}) == 2, [
            (t["node_id"][:6], t["pack_id"], t["started_at"], t["finished_at"]) for t in trials
        ]
    finally:
        assert server.stop() == 0


def test_a_driver_without_the_token_is_refused(ray_cluster: Cluster, tmp_path: Path) -> None:
    script = f"import ray; ray.init(address={ray_cluster.address!r}); print('joined')"
    python = str(Path(RAY).with_name("python"))
    result = subprocess.run(
        [python, "-c", script],
        env=clean_environment(HOME=str(tmp_path), RAY_AUTH_MODE="token"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "joined" not in result.stdout
    assert "token" in result.stderr.lower()


def test_ray_job_submit_with_a_working_dir_runs_a_users_model_on_every_node(
    ray_cluster: Cluster, tmp_path: Path
) -> None:
    # The user's project as Ray ships it: the job's working directory, on every node.
    project = tmp_path / "own-model"
    shutil.copytree(REPO_ROOT / "examples" / "own-model", project)
    spec = yaml.safe_load((project / "sweep.yaml").read_text())
    # Eight tasks of ~2 s each: the worker node's two CPUs alone would need ~8 s, so the head's
    # CPU takes some once its warm-up (a fresh worker importing torch, ~4 s) is done.
    spec["workload"].update(epochs=30, channels=4)
    spec["search"]["num_trials"] = 8
    spec["resources"] = {"pack": False}
    (project / "sweep.yaml").write_text(yaml.safe_dump(spec))
    database = tmp_path / "job.db"
    optisweep = str(Path(RAY).resolve().with_name("optisweep"))
    result = subprocess.run(
        [
            str(Path(RAY).resolve()),
            "job",
            "submit",
            f"--address={ray_cluster.dashboard}",
            f"--working-dir={project}",
            "--",
            optisweep,
            "run",
            "sweep.yaml",
            f"--database-url=sqlite:///{database}",
        ],
        env=ray_cluster.env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "sweep 1 completed" in result.stdout
    engine = make_engine(f"sqlite:///{database}")
    with engine.connect() as connection:
        rows = connection.execute(select(Trial.status, Trial.node_id)).all()
    engine.dispose()
    assert len(rows) == 8
    assert {status for status, _ in rows} == {"completed"}
    assert len({node for _, node in rows}) == 2, rows
