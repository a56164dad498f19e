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
        # one trial a task: a rerun trial packed with a new one would fail with it (a member's
        # failure fails its pack), which is packing's rule, not what this test is about
        "resources": {"max_failures": 0, "checkpoint_every": 1, "pack": False},
    }
    first = start_server(database_url=database_url, env=env)
    first.wait_ready()
    created = httpx.post(f"{first.url}/api/v1/sweeps", json=spec, headers=first.headers)
    assert created.status_code == 201, created.text
    sweep_id = created.json()["id"]
    assert _ended(first, sweep_id)["status"] == "failed"  # 3 of 3 failed

    rerun = run_cli("rerun", str(sweep_id), "--failed", "--url", first.url)
    assert rerun.returncode == 0, rerun.stderr
    assert f"sweep {sweep_id}: 3 trials go again" in rerun.stdout
    extended = run_cli("extend", str(sweep_id), "--trials", "2", "--url", first.url)
    assert extended.returncode == 0, extended.stderr
    assert f"sweep {sweep_id} running: 5 trials in all" in extended.stdout
    kill_tree(first)  # the rerun and the extension queued, or running: either way, killed

    second = start_server(database_url=database_url, env=env)
    second.wait_ready()
    final = _ended(second, sweep_id)
    # The rerun trials completed from their checkpoints. A new trial fails as the first ones
    # did, unless the kill interrupted its first attempt (not a failure: it runs again, and
    # the flaky workload fails only its first build).
    assert (final["status"], final["num_trials"]) == ("completed", 5)
    trials = _get(second, f"/sweeps/{sweep_id}/trials", limit=100)["items"]
    assert sorted(t["number"] for t in trials) == list(range(5))  # asked of TPE once each
    failed = 0
    for trial in trials:
        old = trial["number"] < 3
        assert trial["status"] in (("completed",) if old else ("completed", "failed")), trial
        failed += trial["status"] == "failed"
        steps = [1, 2] if trial["status"] == "failed" else [1, 2, 3, 4]  # epochs before it failed
        series = _get(second, f"/trials/{trial['id']}/metrics")["series"]
        assert series
        assert all(s["steps"] == steps for s in series), series
    if failed:
        assert final["error"].startswith(f"{failed} of 5 trials failed: RuntimeError: planned")
    else:
        assert final["error"] is None
