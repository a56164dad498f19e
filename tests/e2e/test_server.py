"""End to end as a user: `optisweep serve` (uvicorn + a local Ray), the CLI, HTTP and a restart."""

from __future__ import annotations

import json
import re
import signal
import stat
import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import select

from optisweep.service.db.session import make_engine
from optisweep.service.sweeps.models import Sweep
from tests.conftest import REPO_ROOT, clean_environment, wait_until
from tests.e2e.conftest import OPTISWEEP, Server, run_cli

EXAMPLE = REPO_ROOT / "examples" / "rosenbrock-grid.yaml"


def _get(server: Server, path: str, **params: Any) -> Any:
    response = httpx.get(
        f"{server.url}/api/v1{path}", params=params, timeout=30, headers=server.headers
    )
    assert response.status_code == 200, response.text
    return response.json()


def _wait_until(server: Server, sweep_id: int, done: int, *, timeout: float = 180) -> Any:
    def enough() -> Any:
        sweep = _get(server, f"/sweeps/{sweep_id}")
        counts = sweep["trial_counts"]
        finished = sweep["status"] not in ("pending", "running")
        return (
            sweep
            if finished or sum(counts.values()) - counts["pending"] - counts["running"] >= done
            else None
        )

    return wait_until(enough, timeout=timeout, what=f"{done} trials of sweep {sweep_id} done")


def _finished(server: Server, sweep_id: int) -> Any:
    """The sweep once its status is final."""
    return wait_until(
        lambda: (s := _get(server, f"/sweeps/{sweep_id}"))["status"] != "running" and s,
        timeout=60,
        what=f"sweep {sweep_id} to finish",
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server on a fresh SQLite file for this module's CLI tests."""
    root = tmp_path_factory.mktemp("e2e")
    running = Server(database_url=f"sqlite:///{root / 'e2e.db'}", log=root / "server.log")
    running.wait_ready()
    yield running
    assert running.stop() == 0


def test_submit_wait_shows_progress_and_the_leaderboard(server: Server) -> None:
    result = run_cli("submit", str(EXAMPLE), "--wait", "--url", server.url)
    assert result.returncode == 0, result.stderr
    assert "sweep 1 submitted: 16 trials" in result.stdout
    assert f"watch it live: {server.url}/sweeps/1" in result.stdout
    assert "16/16" in result.stdout  # the progress bar's last state
    assert "Leaderboard: val_loss (min, last epoch)" in result.stdout
    assert "Verdict: Pick " in result.stdout  # after the leaderboard: what to pick, and why

    trials = _get(server, "/sweeps/1/trials", limit=100)["items"]
    assert len(trials) == 16
    assert {t["status"] for t in trials} <= {"completed", "diverged"}
    spec = yaml.safe_load(EXAMPLE.read_text())
    for trial in trials:
        series = _get(server, f"/trials/{trial['id']}/metrics")["series"]
        steps = {s["name"]: s["steps"] for s in series}
        assert set(steps) == {"train_loss", "val_loss", "distance_to_optimum", "time_seconds"}
        if trial["status"] == "completed":
            assert all(s == list(range(1, spec["workload"]["epochs"] + 1)) for s in steps.values())
    board = _get(server, "/sweeps/1/leaderboard")["entries"]
    best = board[0]["trial"]
    assert best["optimizer"] in result.stdout
    assert best["objective"] == min(t["objective"] for t in trials if t["status"] == "completed")

    listed = run_cli("status", "--url", server.url)
    assert listed.returncode == 0
    assert "rosenbrock-grid" in listed.stdout
    assert "completed" in listed.stdout
    one = run_cli("status", "1", "--url", server.url)
    assert one.returncode == 0
    assert "16/16 done" in one.stdout
    table = run_cli("trials", "1", "--optimizer", "momentum", "--url", server.url)
    assert table.returncode == 0
    rows = re.findall(r"│\s*\d+\s*│\s*(\w+)\s*│", table.stdout)
    assert rows == ["momentum"] * 8  # 4 lr values x nesterov on and off
    again = run_cli("cancel", "1", "--url", server.url)
    assert again.returncode == 2
    assert "already completed" in again.stderr
    # Every read command prints the API's answer with --json, one JSON document.
    for command, path in (
        (["report", "1"], "/sweeps/1/report"),
        (["status", "1"], "/sweeps/1/leaderboard"),
        (["trials", "1", "--limit", "100"], "/sweeps/1/trials"),
        (["compare", "1"], "/comparisons"),
        (["whoami"], "/me"),
    ):
        printed = run_cli(*command, "--json", "--url", server.url)
        assert printed.returncode == 0, printed.stderr
        answer = json.loads(printed.stdout)
        if command[0] == "report":
            assert answer == _get(server, path)
        elif command[0] == "status":
            assert answer["leaderboard"] == _get(server, path)
        elif command[0] == "trials":
            assert sorted(t["id"] for t in answer) == sorted(t["id"] for t in trials)
        elif command[0] == "compare":
            assert answer["sweeps"][0]["sweep_id"] == 1
        else:
            assert answer["user"]["name"] == "admin"


@pytest.mark.parametrize(
    ("spec_text", "message"),
    [
        (
            "name: x\nworkload: {name: rosenbrock, epochs: 2}\nspace: {optimizers: [sgd], "
            "lr: {low: 0.1, high: 0.01}}\nsearch: {algorithm: grid}\n",
            "space.lr: low must be <= high",
        ),
        (
            "name: x\nworkload: {name: rosenbrock, epochs: 2}\nspace: {optimizers: [adamz], "
            "lr: {values: [0.1]}}\nsearch: {algorithm: grid}\n",
            "space.optimizers: unknown optimizer 'adamz'",
        ),
        (
            "name: x\nworkload: {name: nope, epochs: 2}\nspace: {optimizers: [sgd], "
            "lr: {values: [0.1]}}\nsearch: {algorithm: grid}\n",
            "workload.name: unknown workload 'nope'",
        ),
        ("name: [unclosed\n", "not valid YAML"),
    ],
)
def test_submit_bad_spec_is_one_line_and_exit_2(
    server: Server, tmp_path: Path, spec_text: str, message: str
) -> None:
    spec_file = tmp_path / "bad.yaml"
    spec_file.write_text(spec_text)
    before = _get(server, "/sweeps")["items"]
    result = run_cli("submit", str(spec_file), "--url", server.url)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.stderr
    assert _get(server, "/sweeps")["items"] == before  # nothing was written


def test_cli_without_a_server_or_a_file_says_so(tmp_path: Path) -> None:
    missing = run_cli("submit", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2
    assert "No such file" in missing.stderr
    unreachable = run_cli("status", "--url", "http://127.0.0.1:9")
    assert unreachable.returncode == 1
    assert "no optisweep server answers at http://127.0.0.1:9" in unreachable.stderr
    assert "Traceback" not in unreachable.stderr + missing.stderr


RESTART_SPEC = {
    "name": "restart",
    "workload": {"name": "rosenbrock", "epochs": 5, "steps_per_epoch": 300},
    "space": {"optimizers": ["sgd", "adam"], "lr": {"low": 1e-5, "high": 1e-4, "log": True}},
    "search": {"algorithm": "random", "num_trials": 12, "seed": 7},
    "objective": {"metric": "val_loss", "mode": "min"},
    "resources": {"max_pack_size": 2},
}


@pytest.mark.slow
def test_a_restarted_server_finishes_the_sweep_without_losing_or_repeating_trials(
    start_server: type[Server], tmp_path: Path
) -> None:
    database_url = f"sqlite:///{tmp_path / 'restart.db'}"
    first = start_server(database_url=database_url)
    first.wait_ready()
    created = httpx.post(
        f"{first.url}/api/v1/sweeps", json=RESTART_SPEC, timeout=30, headers=first.headers
    )
    assert created.status_code == 201, created.text
    sweep_id = created.json()["id"]
    mid = _wait_until(first, sweep_id, done=3)
    assert mid["status"] == "running", "the sweep finished before the restart; make it longer"
    assert first.stop() == 0
    before = {
        t["id"]: t
        for t in _trials_in(database_url, sweep_id)
        if t["status"] in ("completed", "diverged")
    }
    assert len(before) >= 3

    second = start_server(database_url=database_url)
    second.wait_ready()
    _wait_until(second, sweep_id, done=12)
    final = _finished(second, sweep_id)
    assert final["status"] == "completed"

    trials = _get(second, f"/sweeps/{sweep_id}/trials", limit=100)["items"]
    assert sorted(t["number"] for t in trials) == list(range(12))
    assert {t["status"] for t in trials} <= {"completed", "diverged"}
    for trial in trials:
        if trial["id"] in before:  # finished before the restart: not run again
            finished_at = datetime.fromisoformat(trial["finished_at"])
            assert finished_at == before[trial["id"]]["finished_at"]
            assert trial["attempt"] == 1
        series = _get(second, f"/trials/{trial['id']}/metrics")["series"]
        for one in series:  # one row per epoch, none replayed twice
            assert one["steps"] == list(range(1, len(one["steps"]) + 1))
        if trial["status"] == "completed":
            assert all(len(one["steps"]) == 5 for one in series)


def _trials_in(database_url: str, sweep_id: int) -> list[dict[str, Any]]:
    from optisweep.service.trials.models import Trial

    engine = make_engine(database_url)
    with engine.connect() as connection:
        rows = connection.execute(
            select(Trial.id, Trial.status, Trial.finished_at).where(Trial.sweep_id == sweep_id)
        ).all()
        assert connection.execute(select(Sweep.status).where(Sweep.id == sweep_id)).scalar()
    engine.dispose()
    return [
        {"id": id_, "status": status.value, "finished_at": finished}
        for id_, status, finished in rows
    ]


@pytest.mark.slow
def test_run_drives_a_sweep_without_a_server(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'batch.db'}"
    result = run_cli("run", str(EXAMPLE), "--database-url", database_url)
    assert result.returncode == 0, result.stderr
    assert "sweep 1 completed" in result.stdout
    assert "Leaderboard: val_loss (min, last epoch)" in result.stdout
    engine = make_engine(database_url)
    with engine.connect() as connection:
        sweep = connection.execute(select(Sweep.status, Sweep.num_trials, Sweep.claimed_by)).one()
    engine.dispose()
    assert (sweep.status.value, sweep.num_trials, sweep.claimed_by) == ("completed", 16, None)
    bad = tmp_path / "bad.yaml"
    bad.write_text(EXAMPLE.read_text().replace("epochs: 20", "epochs: 0"))
    rejected = run_cli("run", str(bad), "--database-url", database_url)
    assert rejected.returncode == 2
    assert "workload.epochs" in rejected.stderr
    assert "Traceback" not in rejected.stderr


@pytest.mark.slow
def test_a_server_takes_over_a_sweep_whose_optisweep_run_was_interrupted(
    start_server: type[Server], tmp_path: Path
) -> None:
    database_url = f"sqlite:///{tmp_path / 'takeover.db'}"
    spec_file = tmp_path / "takeover.yaml"
    spec_file.write_text(yaml.safe_dump({**RESTART_SPEC, "name": "takeover"}))
    # A command started in the background by a non-interactive shell (nohup ... &) ignores
    # SIGINT, and so would this child, which inherits that: give it the default disposition.
    ignored = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        run = subprocess.Popen(
            [OPTISWEEP, "run", str(spec_file), "--database-url", database_url],
            env=clean_environment(COLUMNS="200"),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    finally:
        signal.signal(signal.SIGINT, ignored)

    def started() -> bool:
        assert run.poll() is None, run.communicate()[0]
        return any(t["status"] == "running" for t in _trials_in_if_any(database_url))

    wait_until(started, timeout=120, what="optisweep run to start a trial")
    run.send_signal(signal.SIGINT)
    output, _ = run.communicate(timeout=60)
    assert run.returncode == 130, output
    assert "interrupted: sweep 1 stays running" in output
    assert "Traceback" not in output

    server = start_server(database_url=database_url, env={"OPTISWEEP_CLAIM_LEASE_SECONDS": "2"})
    server.wait_ready()
    _wait_until(server, 1, done=12)
    final = _finished(server, 1)
    assert final["status"] == "completed"
    trials = _get(server, "/sweeps/1/trials", limit=100)["items"]
    assert sorted(t["number"] for t in trials) == list(range(12))
    assert {t["status"] for t in trials} <= {"completed", "diverged"}
    assert all(t["attempt"] == 1 for t in trials)  # interrupted attempts are not failures


def _trials_in_if_any(database_url: str) -> list[dict[str, Any]]:
    from sqlalchemy.exc import OperationalError

    try:
        return _trials_in(database_url, 1)
    except (OperationalError, AssertionError):
        return []  # the database or the sweep does not exist yet


@pytest.mark.slow
def test_the_gd_sgd_minibatch_example_and_its_report_from_the_cli(
    server: Server, tmp_path: Path
) -> None:
    """The example of issue 15 as a user runs it: batch sizes full, 1 and 64, with and
    without cosine decay and clipping, then `optisweep report` on it (2 epochs of its 5: a
    batch of one is 1,437 steps an epoch, most of this test's time)."""
    spec = yaml.safe_load((REPO_ROOT / "examples" / "digits-gd-sgd-minibatch.yaml").read_text())
    spec["workload"]["epochs"] = 2
    example = tmp_path / "digits-gd-sgd-minibatch.yaml"
    example.write_text(yaml.safe_dump(spec))
    result = run_cli("submit", str(example), "--wait", "--url", server.url)
    assert result.returncode == 0, result.stdout + result.stderr
    sweep_id = int(result.stdout.split("sweep ", 1)[1].split()[0])
    trials = _get(server, f"/sweeps/{sweep_id}/trials", limit=200)["items"]
    assert len(trials) == 144
    assert {str(t["settings"]["batch_size"]) for t in trials} == {"full", "1", "64"}
    for batch in ("full", 1, 64):  # packs never mix batch sizes
        packs = {t["pack_id"] for t in trials if t["settings"]["batch_size"] == batch}
        others = {t["pack_id"] for t in trials if t["settings"]["batch_size"] != batch}
        assert not (packs - {None}) & others
    report = run_cli("report", str(sweep_id), "--url", server.url)
    assert report.returncode == 0, report.stdout + report.stderr
    families = _get(server, f"/sweeps/{sweep_id}/report")["families"]
    assert [f["optimizer"] for f in families] == sorted(
        ["sgd", "momentum", "adam"],
        key=lambda name: -next(f["best_objective"] for f in families if f["optimizer"] == name),
    )
    for family in families:
        assert family["summary"] in " ".join(report.stdout.split())  # the sentence, as printed
        assert family["basin_low"] <= family["best_lr"] <= family["basin_high"]
        assert family["best_objective"] > 0.9  # every family learns digits at its best
        settings = family["best_settings"]
        assert set(settings) == {"batch_size", "clip_norm", "schedule"}


@pytest.mark.slow
def test_the_first_start_makes_an_admin_whose_token_the_cli_signs_in_with(
    start_server: type[Server], tmp_path: Path
) -> None:
    """A fresh server creates 'admin', writes its token owner-only where the CLI reads it and
    prints a sign-in link once; the CLI then manages users, projects and tokens."""
    database_url = f"sqlite:///{tmp_path / 'first.db'}"
    server = start_server(database_url=database_url)
    server.wait_ready()
    token = server.token_file.read_text().strip()
    assert stat.S_IMODE(server.token_file.stat().st_mode) == 0o600
    log = server.log.read_text()
    assert f"sign the dashboard in at {server.url}/login#token={token}" in log
    who = run_cli("whoami", "--url", server.url)
    assert who.returncode == 0, who.stderr
    assert who.stdout.startswith("admin (admin)")
    made = run_cli("user", "create", "bob", "--url", server.url)
    bob = made.stdout.strip().splitlines()[-1]
    assert bob.startswith("osw_")
    assert (
        run_cli("project", "create", "team", "--owner", "bob", "--url", server.url).returncode == 0
    )
    bobs_file = tmp_path / "bob" / "token"
    as_bob = {"OPTISWEEP_TOKEN_FILE": str(bobs_file)}
    refused = run_cli("status", "--url", server.url, env=as_bob)
    assert refused.returncode == 2
    assert "not signed in: run `optisweep login`" in refused.stderr
    wrong = run_cli("status", "--url", server.url, env={**as_bob, "OPTISWEEP_TOKEN": "osw_wrong"})
    assert wrong.returncode == 2
    assert "token refused" in wrong.stderr  # a token was sent: not "not signed in"
    login = run_cli("login", "--token", bob, "--url", server.url, env=as_bob)
    assert login.returncode == 0, login.stderr
    assert "signed in as bob" in login.stdout
    assert stat.S_IMODE(bobs_file.stat().st_mode) == 0o600
    submitted = run_cli(
        "submit", str(EXAMPLE), "--project", "team", "--url", server.url, env=as_bob
    )
    assert submitted.returncode == 0, submitted.stderr
    listed = run_cli("status", "--project", "team", "--url", server.url, env=as_bob)
    assert "rosenbrock-grid" in listed.stdout
    created = run_cli("token", "create", "--name", "laptop", "--url", server.url, env=as_bob)
    new_id = created.stdout.split()[1]
    assert run_cli("token", "revoke", new_id, "--url", server.url, env=as_bob).returncode == 0
    tokens = run_cli("token", "list", "--url", server.url, env=as_bob)
    assert "laptop" in tokens.stdout
    viewer = run_cli(
        "project",
        "add-member",
        "team",
        "admin",
        "--role",
        "viewer",
        "--url",
        server.url,
        env=as_bob,
    )
    assert viewer.returncode == 0, viewer.stderr
    assert server.stop() == 0
    again = start_server(database_url=database_url)
    again.wait_ready()
    assert server.log.read_text().count("first start") == 1  # users exist: no new admin
    # A lost admin token: whoever holds the database's credentials makes a new one.
    recovered = {"OPTISWEEP_TOKEN_FILE": str(tmp_path / "recovered" / "token")}
    made = run_cli("db", "token", "--database-url", database_url, env=recovered)
    assert made.returncode == 0, made.stderr
    who = run_cli("whoami", "--url", again.url, env=recovered)
    assert who.stdout.startswith("admin (admin)"), who.stdout + who.stderr


def test_on_every_interface_every_unauthenticated_request_is_refused(
    start_server: type[Server], tmp_path: Path
) -> None:
    """`optisweep serve --host 0.0.0.0` (as compose runs it): every operation of the API but
    the health checks and signing in answers 401 without a token, whatever it is asked."""
    server = start_server(
        database_url=f"sqlite:///{tmp_path / 'exposed.db'}", env={"OPTISWEEP_HOST": "0.0.0.0"}
    )
    server.wait_ready()
    schema = httpx.get(f"{server.url}/api/v1/openapi.json", headers=server.headers).json()
    public = {("get", "/api/v1/healthz"), ("get", "/api/v1/readyz"), ("post", "/api/v1/session")}
    refused = {}
    for path, item in schema["paths"].items():
        for method in item:
            if (method, path) in public:
                continue
            url = server.url + re.sub(r"\{[^}]+\}", "1", path)
            response = httpx.request(method, url, json={}, timeout=30)
            refused[f"{method.upper()} {path}"] = response.status_code
    assert len(refused) >= 30
    assert set(refused.values()) == {401}, refused
    assert httpx.get(f"{server.url}/api/v1/openapi.json", timeout=30).status_code == 401
    assert httpx.get(f"{server.url}/", timeout=30, follow_redirects=False).status_code == 303
