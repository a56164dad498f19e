"""Schemathesis against a real `optisweep serve`: every check passes (no server error, nothing
outside the OpenAPI schema); and the Ray token file that server's local Ray writes is 0600."""

from __future__ import annotations

import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.conftest import clean_environment
from tests.e2e.conftest import Server
from tests.service.conftest import fresh_postgres_database

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))

SEMANTIC_422 = [
    "POST /api/v1/sweeps",
    "POST /api/v1/specs/parse",
    "GET /api/v1/sweeps",
    "GET /api/v1/sweeps/{sweep_id}/trials",
    "GET /api/v1/sweeps/{sweep_id}/importance",
    "POST /api/v1/code",
]
"""Operations that check more than their schema can say: a spec against the registries, a YAML
text, an opaque cursor, an optimizer the sweep searches, a zip archive's contents. A
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
            env={"HOME": str(home), "OPTISWEEP_MAX_TRIALS": "2"},
        )
        stack.callback(server.stop)
        server.wait_ready()
        yield server, home


def test_the_ray_token_file_is_owner_only(fuzzed: tuple[Server, Path]) -> None:
    _, home = fuzzed
    token = home / ".ray" / "auth_token"
    assert token.is_file()  # Ray 2.60 writes it when it starts a cluster with token auth
    assert stat.S_IMODE(token.stat().st_mode) == 0o600


def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    fuzzed: tuple[Server, Path], tmp_path: Path
) -> None:
    server, _ = fuzzed
    (tmp_path / "schemathesis.toml").write_text(CONFIG)
    result = subprocess.run(
        [
            SCHEMATHESIS,
            "--config-file",
            "schemathesis.toml",
            "run",
            f"{server.url}/api/v1/openapi.json",
            "--checks=all",
            "--max-examples=25",
            "--seed=1",
            "--request-timeout=30",
            "--generation-database=none",
            "--no-color",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        env=clean_environment(),
        check=False,
    )
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    assert "passed" in result.stdout
