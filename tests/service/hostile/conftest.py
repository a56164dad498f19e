"""Fixtures for hostile-input tests: the API on a fresh SQLite file and a fresh PostgreSQL
database, under a real uvicorn server without a controller (nothing here needs a sweep to run)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from optisweep.service.config import Settings
from optisweep.service.db.session import make_engine, make_sessionmaker
from tests.service.conftest import fresh_postgres_database, running_server

LIMIT = 1_048_576
"""The default OPTISWEEP_MAX_REQUEST_BYTES."""

SPEC: dict[str, Any] = {
    "name": "every-number",
    "workload": {"name": "rosenbrock", "epochs": 2, "steps_per_epoch": 3},
    "space": {
        "optimizers": ["sgd", "adam"],
        "lr": {"low": 0.001, "high": 0.1},
        "beta1": {"values": [0.9, 0.95]},
        "beta2": {"low": 0.9, "high": 0.99},
        "overrides": {"sgd": {"weight_decay": 0.0001}},
    },
    "search": {
        "algorithm": "random",
        "num_trials": 2,
        "seed": 3,
        "concurrency": 2,
        "scheduler": {"name": "asha", "grace_period": 1, "reduction_factor": 3},
    },
    "objective": {"metric": "val_loss", "mode": "min"},
    "resources": {"cpus_per_trial": 1.0, "max_failures": 1, "max_pack_size": 8},
}
"""A valid spec with a number in every numeric field."""


@dataclass
class Served:
    """A running server, a client of its API, and its database."""

    client: httpx.Client
    address: tuple[str, int]
    sessions: sessionmaker[Session]
    checkpoint_dir: Path
    token: str
    """The admin's token, for requests made by hand."""


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """The API on a fresh database of each backend."""
    folder = tmp_path_factory.mktemp("hostile")
    with ExitStack() as stack:
        if request.param == "sqlite":
            database_url = f"sqlite:///{folder / 'optisweep.db'}"
        else:
            database_url = stack.enter_context(fresh_postgres_database())
        checkpoint_dir = folder / "checkpoints"
        settings = Settings(database_url=database_url, checkpoint_dir=str(checkpoint_dir))
        server = stack.enter_context(running_server(settings, run_controller=False))
        client = stack.enter_context(
            httpx.Client(base_url=f"{server.url}/api/v1", timeout=30, headers=server.headers)
        )
        engine = make_engine(database_url)
        stack.callback(engine.dispose)
        parts = urlsplit(server.url)
        address = (parts.hostname or "", parts.port or 0)
        yield Served(client, address, make_sessionmaker(engine), checkpoint_dir, server.token)


@pytest.fixture(scope="module")
def sweep_id(served: Served) -> int:
    """A sweep that exists (it never runs: the server has no controller)."""
    response = served.client.post("/sweeps", json=SPEC)
    assert response.status_code == 201, response.text
    sweep: int = response.json()["id"]
    return sweep


def post_json(served: Served, text: str | bytes, path: str = "/sweeps") -> httpx.Response:
    """POST ``text`` as it is, declared as JSON."""
    return served.client.post(path, content=text, headers={"content-type": "application/json"})


def first_error(response: httpx.Response) -> dict[str, Any]:
    """The first error of a 422, asserting the response is one."""
    assert response.status_code == 422, response.text
    detail: dict[str, Any] = response.json()["detail"][0]
    return detail
