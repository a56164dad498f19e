"""Schemathesis against a real `optisweep serve`: every check passes (no server error, nothing
outside the OpenAPI schema); and the Ray token file that server's local Ray writes is 0600."""

from __future__ import annotations

import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.conftest import clean_environment
from tests.e2e.conftest import Server
from tests.service.conftest import fresh_postgres_database

pytestmark = pytest.mark.slow  # make test runs it; make test-fast leaves it out

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))

SEMANTIC_422 = [
    "POST /api/v1/sweeps",
    "POST /api/v1/specs/parse",
    "GET /api/v1/sweeps",
    "GET /api/v1/sweeps/{sweep_id}/trials",
    "GET /api/v1/sweeps/{sweep_id}/metrics",
    "GET /api/v1/comparisons",
    "GET /api/v1/sweeps/{sweep_id}/importance",
    "POST /api/v1/code",
    "GET /api/v1/audit",
    "POST /api/v1/sweeps/{sweep_id}/extend",
    "POST /api/v1/sweeps/{sweep_id}/rerun",
]
"""Operations that check more than their schema can say: a spec against the registries, a YAML
text, an opaque cursor (sweeps, metrics, audit), an optimizer the sweep searches, a target the
compared sweeps report, a zip archive's contents, a sweep that can be extended (not a grid,
within the trial limit) or rerun (finished). A
schema-valid request to one of them may rightly be a 422, which positive_data_acceptance
otherwise counts as a failure."""

CONFIG = f"""
[[operations]]
include-name = {SEMANTIC_422!r}
checks.positive_data_acceptance.expected-statuses = ["2xx", "404", "409", "422"]
"""


# PostgreSQL only, to keep `make test` short: it is the stricter store (NUL is refused there),
# and tests/service/hostile runs every input rule on both databases.
@pytest.fixture(scope="module", params=["postgresql"])
def fuzzed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, Path]]:
    """`optisweep serve` with a home folder of its own (so Ray's token file is fresh) and
    OPTISWEEP_MAX_TRIALS=2 (the fuzzer submits valid sweeps: they stay small); its home."""
    folder = tmp_path_factory.mktemp("fuzz")
    home = folder / "home"
    home.mkdir()
    with ExitStack() as stack:
        if request.param == "sqlite":
            database_url = f"sqlite:///{folder / 'optisweep.db'}"
        else:
            database_url = stack.enter_context(fresh_postgres_database())
        server = Server(
            database_url=database_url,
            log=folder / "server.log",
            env={
                "HOME": str(home),
                "OPTISWEEP_MAX_TRIALS": "2",
                "OPTISWEEP_RATE_LIMIT": "100000/minute",
                "OPTISWEEP_RATE_LIMIT_ANONYMOUS": "100000/minute",
            },
        )
        stack.callback(server.stop)
        server.wait_ready()
        yield server, home


def test_the_ray_token_file_is_owner_only(fuzzed: tuple[Server, Path]) -> None:
    _, home = fuzzed
    token = home / ".ray" / "auth_token"
    assert token.is_file()  # Ray 2.60 writes it when it starts a cluster with token auth
    assert stat.S_IMODE(token.stat().st_mode) == 0o600


def _schemathesis(server: Server, folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Schemathesis over the server's OpenAPI schema (fetched signed in, as a file)."""
    schema = folder / "openapi.json"
    if not schema.exists():
        response = httpx.get(f"{server.url}/api/v1/openapi.json", headers=server.headers)
        schema.write_text(response.text)
    (folder / "schemathesis.toml").write_text(CONFIG)
    return subprocess.run(
        [
            SCHEMATHESIS,
            "--config-file",
            "schemathesis.toml",
            "run",
            str(schema),
            f"--url={server.url}",
            "--seed=1",
            "--request-timeout=30",
            "--generation-database=none",
            "--no-color",
            *args,
        ],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
        env=clean_environment(),
        check=False,
    )


def test_schemathesis_signed_in_finds_no_server_error_and_no_schema_violation(
    fuzzed: tuple[Server, Path], tmp_path: Path
) -> None:
    server, _ = fuzzed
    result = _schemathesis(
        server,
        tmp_path,
        "--checks=all",
        "--max-examples=25",
        f"--header=Authorization: Bearer {server.token}",
    )
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    assert "passed" in result.stdout


def test_schemathesis_without_a_token_gets_401s_and_never_a_server_error(
    fuzzed: tuple[Server, Path], tmp_path: Path
) -> None:
    """Every operation but the health checks and signing in answers 401, as its schema says
    (the matrix in tests/service/test_access.py asserts the status of each one)."""
    server, _ = fuzzed
    result = _schemathesis(
        server,
        tmp_path,
        "--checks=not_a_server_error,status_code_conformance,content_type_conformance,"
        "response_schema_conformance,ignored_auth",
        "--max-examples=5",  # every answer is the same 401: a few inputs per operation say it
    )
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    assert "passed" in result.stdout
