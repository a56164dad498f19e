"""The `optisweep` command as a user runs it: a real process, a real database."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

OPTISWEEP = shutil.which("optisweep") or str(Path(".venv/bin/optisweep").resolve())


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [OPTISWEEP, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_db_upgrade_creates_the_schema(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    result = _run("db", "upgrade", env={"OPTISWEEP_DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    assert "is at head" in result.stdout
    tables = set(inspect(create_engine(url)).get_table_names())
    assert {"sweeps", "trials", "metrics", "alembic_version"} <= tables
    again = _run("db", "upgrade", "--database-url", url)  # idempotent
    assert again.returncode == 0, again.stderr


@pytest.mark.parametrize("url", ["nosuchdb://x", "sqlite:////nonexistent-dir/deeper/x.db"])
def test_db_upgrade_bad_url_is_one_line_and_exit_2(url: str) -> None:
    result = _run("db", "upgrade", "--database-url", url)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1
    assert "database-url" in lines[0]
    assert url in lines[0]


def test_serve_on_a_port_in_use_is_one_line_and_exit_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _run("serve", "--port", str(port))
    assert result.returncode == 2
    assert f"port {port}: cannot listen on 127.0.0.1" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", ["submit", "run"])
@pytest.mark.parametrize(
    ("spec_text", "message"),
    [
        (
            "name: x\nworkload: &w {name: rosenbrock, epochs: 2}\nagain: *w\n",
            "YAML aliases (*name) are not supported (line 3, column 8)",
        ),
        ("name: x\nspace: {lr: {low: .nan}}\n", "space.lr.low: must be a finite number, got NaN"),
    ],
    ids=["alias", "nan"],
)
def test_a_spec_file_with_aliases_or_nan_is_one_line_and_exit_2(
    tmp_path: Path, command: str, spec_text: str, message: str
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(spec_text)
    url = ["--url", "http://127.0.0.1:9"] if command == "submit" else []  # read before connecting
    result = _run(command, str(spec), *url)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.stderr


def test_version_and_flags_read_as_flags() -> None:
    version = _run("--version")
    assert version.returncode == 0
    assert version.stdout.startswith("optisweep ")
    helped = _run("submit", "--help", env={"COLUMNS": "120"})
    assert helped.returncode == 0
    wait = next(line for line in helped.stdout.splitlines() if "--wait" in line)
    assert "<bool>" not in wait  # a flag, not an option taking a value


def test_a_typo_in_a_spec_gets_did_you_mean_and_a_bad_value_is_echoed(tmp_path: Path) -> None:
    spec = tmp_path / "typo.yaml"
    spec.write_text(
        "name: typo\nworkload: {name: quadratic, epochs: -3}\n"
        "space: {optimizers: [adam], lr: {values: [0.1]}}\nsearch: {algoritm: grid}\n"
    )
    result = _run("run", str(spec))
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "search.algoritm: unknown field 'algoritm'; did you mean 'algorithm'?" in lines[0]
    assert "workload.epochs: Input should be greater than or equal to 1, got -3" in lines[0]
    assert "Traceback" not in result.stderr


def test_extend_and_rerun_refuse_what_they_cannot_do_in_one_line() -> None:
    """Before any connection: no trials to add, or no trials named to rerun (exit 2)."""
    nothing = _run("rerun", "5", "--url", "http://127.0.0.1:9")
    assert nothing.returncode == 2
    assert nothing.stderr.strip() == "error: rerun: say which trials: --failed, --stopped or both"
    none_more = _run("extend", "5", "--trials", "0", "--url", "http://127.0.0.1:9")
    assert none_more.returncode == 2
    assert "--trials" in none_more.stderr
    assert "Traceback" not in nothing.stderr + none_more.stderr
