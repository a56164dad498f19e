"""The chaos suite's short version: every fault once against a real server, nothing lost.

`make chaos` runs the same cases many times with random timing on fresh databases; here one
server per database takes the cases in turn (restarted by the cases that kill it).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chaos.harness import CASES_BY_NAME, run_case, serving
from tests.service.conftest import fresh_postgres_database

pytestmark = pytest.mark.slow  # make test runs it; make test-fast leaves it out

SHORT = {
    "sqlite": [
        "poison-sweep",
        "kill-pack-worker",
        "kill-trial-worker",
        "kill-server-2s",
        "sigstop-server",
        "checkpoints-unwritable",
    ],
    "postgresql": ["pg-terminate"],
}
"""Each kind of fault once (kill-server with one downtime), to keep `make test` short."""


@pytest.fixture(params=sorted(SHORT))
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(kind, URL) of a fresh database of each kind."""
    if request.param == "sqlite":
        yield "sqlite", f"sqlite:///{tmp_path / 'chaos.db'}"
    else:
        with fresh_postgres_database() as url:
            yield "postgresql", url


def test_every_fault_loses_nothing_and_duplicates_nothing(
    database: tuple[str, str], tmp_path: Path
) -> None:
    kind, url = database
    with serving(url, tmp_path, seed=7, trials=4, epochs=6) as run:
        for name in SHORT[kind]:
            outcome = run_case(CASES_BY_NAME[name], run, database=kind)
            assert outcome.faults >= 1, name
            for audit in outcome.audits:
                assert (audit.lost, audit.duplicated) == (0, 0), (name, audit)
            # the healthy sweep trained (trials failing at an unwritable folder start again from
            # scratch, so theirs may hold nothing, and say why)
            healthy = outcome.audits[0]
            assert healthy.expected > 0 or "trials failed" in (healthy.error or ""), name
            assert outcome.healthy_completed, (name, outcome.audits)
