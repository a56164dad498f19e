"""Extend and rerun as a user, across killed servers: `optisweep extend` and `optisweep rerun
--failed` on a real `optisweep serve`, its whole process tree SIGKILLed right after each, a new
server finishing the work, and every trial's every epoch stored once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.chaos.harness import kill_tree
from tests.conftest import wait_until
from tests.e2e.conftest import Server, run_cli


def _get(server: Server, path: str, **params: Any) -> Any:
    answer = httpx.get(f"{server.url}/api/v1{path}", params=params, headers=server.headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _ended(server: Server, sweep_id: int) -> Any:
    """The sweep once no trial of it is open."""
    return wait_until(
        lambda: (
            (s := _get(server, f"/sweeps/{sweep_id}"))["status"] not in ("pending", "running") and s
        ),
        timeout=180,
        what=f"sweep {sweep_id} to end",
    )


@pytest.mark.slow
def test_extend_and_rerun_survive_a_killed_server(
    start_server: type[Server], tmp_path: Path, plugin_path: str
) -> None:
    database_url = f"sqlite:///{tmp_path / 'reopen.db'}"
    env = {"PYTHONPATH": plugin_path}  # the flaky test workload, for the server's workers
    spec = {
        "name": "reopen-restart",
        # every trial's first attempt fails evaluating epoch 3, after 2 checkpointed epochs
        "workload": {
            "name": "flaky",
            "epochs": 4,
            "fail_times": 1,
            "fail_at_epoch": 3,
            "attempts_dir": str(tmp_path / "attempts"),
        },
        "space": {"optimizers": ["sgd", "adam"], "lr": {"low": 1e-4, "high": 1e-2, "log": True}},
        "search": {"algorithm": "tpe", "num_trials": 3, "seed": 2},
        "objective": {"metric": "val_loss", "mode": "min"},
        "resources": {"max_failures": 0, "checkpoint_every": 1},
    }
    first = start_server(database_url=database_url, env=env)
    first.wait_ready()
    created = httpx.post(f"{first.url}/api/v1/sweeps", json=spec, headers=first.headers)
    assert created.status_code == 201, created.text
    sweep_id = created.json()["id"]
    assert _ended(first, sweep_id)["status"] == "failed"

    extended = run_cli("extend", str(sweep_id), "--trials", "2", "--url", first.url)
    assert extended.returncode == 0, extended.stderr
    assert f"sweep {sweep_id} running: 5 trials in all" in extended.stdout
    kill_tree(first)  # the extension is queued, or running: either way, killed

    second = start_server(database_url=database_url, env=env)
    second.wait_ready()
    assert _ended(second, sweep_id)["status"] == "failed"
    trials = _get(second, f"/sweeps/{sweep_id}/trials", limit=100)["items"]
    assert sorted(t["number"] for t in trials) == list(range(5))  # asked of TPE once each
    assert {t["status"] for t in trials} == {"failed"}

    rerun = run_cli("rerun", str(sweep_id), "--failed", "--url", second.url)
    assert rerun.returncode == 0, rerun.stderr
    assert f"sweep {sweep_id}: 5 trials go again" in rerun.stdout
    kill_tree(second)

    third = start_server(database_url=database_url, env=env)
    third.wait_ready()
    final = _ended(third, sweep_id)
    assert (final["status"], final["error"], final["num_trials"]) == ("completed", None, 5)
    trials = _get(third, f"/sweeps/{sweep_id}/trials", limit=100)["items"]
    assert sorted(t["number"] for t in trials) == list(range(5))
    for trial in trials:
        assert trial["status"] == "completed", trial
        series = _get(third, f"/trials/{trial['id']}/metrics")["series"]
        assert series
        assert all(s["steps"] == [1, 2, 3, 4] for s in series), series
