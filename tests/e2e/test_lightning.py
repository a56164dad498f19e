"""The Lightning example end to end: copied elsewhere and submitted with the CLI from its own
directory to a real `optisweep serve`, its plain LightningModule trained on Ray workers with
each trial's optimizer, stopped early by ASHA, ranked by family."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.e2e.conftest import Server, run_cli

EXAMPLE = REPO_ROOT / "examples" / "lightning"


@pytest.fixture
def server(shared_server: Server) -> Server:
    """The shared server (its debugging routes on, to look at its modules)."""
    return shared_server


def _get(server: Server, path: str, **params: Any) -> Any:
    response = httpx.get(
        f"{server.url}/api/v1{path}", params=params, timeout=30, headers=server.headers
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_the_lightning_example_tunes_a_plain_module(server: Server, tmp_path: Path) -> None:
    project = tmp_path / "lightning"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("__pycache__"))
    spec = yaml.safe_load((project / "sweep.yaml").read_text())
    result = run_cli("submit", "sweep.yaml", "--wait", "--url", server.url, cwd=project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Leaderboard: val_accuracy (max, last epoch)" in result.stdout
    sweep_id = int(result.stdout.split("sweep ", 1)[1].split()[0])
    assert _get(server, f"/sweeps/{sweep_id}")["status"] == "completed"

    trials = _get(server, f"/sweeps/{sweep_id}/trials", limit=100)["items"]
    assert len(trials) == spec["search"]["num_trials"]
    assert {t["status"] for t in trials} <= {"completed", "stopped"}  # none failed
    assert any(t["status"] == "stopped" for t in trials)  # ASHA stopped the Trainer early
    for trial in trials:
        series = {
            s["name"]: s["steps"] for s in _get(server, f"/trials/{trial['id']}/metrics")["series"]
        }
        assert set(series) == {"train_loss", "val_loss", "val_accuracy", "time_seconds"}
        assert series["val_accuracy"] == list(range(1, trial["epochs_run"] + 1))

    board = _get(server, f"/sweeps/{sweep_id}/leaderboard")["entries"]
    assert len(board) >= 3
    assert len({entry["optimizer"] for entry in board}) == len(board)
    best = board[0]["trial"]["objective"]
    assert best == max(t["objective"] for t in trials if t["objective"] is not None)
    assert best > 0.5  # ten classes: chance is 0.1

    modules = {name.split(".")[0] for name in _get(server, "/debug/modules")}
    assert not {"lightning", "model"} & modules  # the user's code ran on workers only
