"""The notebook-style client example (examples/client.py) against `optisweep serve`, as a user
runs it: no CLI, the reference sweep, a progress bar, the leaderboard as a DataFrame."""

from __future__ import annotations

import re
import subprocess
import sys

import httpx
import pytest

from tests.conftest import REPO_ROOT, clean_environment
from tests.e2e.conftest import Server

SCRIPT = REPO_ROOT / "examples" / "client.py"
FAMILIES = ("sgd", "momentum", "adagrad", "adadelta", "rmsprop", "adam", "adamax")


def test_the_notebook_script_runs_the_reference_sweep_to_a_dataframe(shared_server: Server) -> None:
    server = shared_server
    server.token  # noqa: B018  (writes the admin's token file the client reads, as a first start does)
    result = subprocess.run(
        [sys.executable, str(SCRIPT)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=REPO_ROOT,
        env=clean_environment(
            OPTISWEEP_URL=server.url, OPTISWEEP_TOKEN_FILE=str(server.token_file), COLUMNS="200"
        ),
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    found = re.search(rf"sweep (\d+): 64 trials; live at {re.escape(server.url)}/sweeps/(\d+)", out)
    assert found is not None, out
    sweep_id = int(found.group(1))
    assert found.group(2) == str(sweep_id)
    assert "64/64" in out  # the progress bar's last state
    assert f"sweep {sweep_id} completed" in out
    heading = "Leaderboard by val_accuracy (max, each trial's last epoch):"
    assert heading in out

    board = httpx.get(
        f"{server.url}/api/v1/sweeps/{sweep_id}/leaderboard", headers=server.headers, timeout=30
    ).json()
    rows = out.split(heading)[1].splitlines()[2 : 2 + len(FAMILIES)]
    printed = [row.split()[1] for row in rows]  # rank, optimizer, objective, trial, lr
    assert printed == [entry["optimizer"] for entry in board["entries"]]
    assert set(printed) == set(FAMILIES)
    best = float(rows[0].split()[2])
    assert best == pytest.approx(board["entries"][0]["trial"]["objective"], abs=5e-7)
    assert best > 0.9  # the reference sweep's best MLP on the digits
    assert out.count("\n- ") == len(FAMILIES)  # one report sentence per family
    assert "step" in out  # the per-epoch table of the best val_accuracy per family
