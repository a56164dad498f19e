"""Database fixtures: the same tests run on SQLite and on the real PostgreSQL.

PostgreSQL tests skip with a reason where no server answers, except under
OPTISWEEP_REQUIRE_POSTGRES=1 (set by .ci/run), where a missing server fails them.
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from optisweep.service.accounts import repository as accounts
from optisweep.service.accounts.tokens import read_token_file
from optisweep.service.config import Settings
from optisweep.service.db.migrate import upgrade_engine
from optisweep.service.db.session import make_engine, make_sessionmaker
from optisweep.service.main import create_app
from tests.conftest import wait_until

POSTGRES_ADMIN_URL = os.environ.get(
    "OPTISWEEP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


def _postgres_available() -> str | None:
    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=3):
            return None
    except psycopg.OperationalError as exc:
        return f"PostgreSQL at {POSTGRES_ADMIN_URL} is not reachable: {exc}".splitlines()[0]


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """A new, empty PostgreSQL database's URL, dropped afterwards (skips, or fails under
    OPTISWEEP_REQUIRE_POSTGRES=1, when PostgreSQL is not reachable)."""
    reason = _postgres_available()
    if reason is not None:
        if os.environ.get("OPTISWEEP_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"OPTISWEEP_REQUIRE_POSTGRES=1 but {reason}")
        pytest.skip(reason)
    name = f"optisweep_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test session, dropped afterwards."""
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database URL per backend (a fresh SQLite file, or a fresh PostgreSQL database)."""
    if request.param == "sqlite":
        return f"sqlite:///{Path(tmp_path_factory.mktemp('db')) / 'optisweep.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture(scope="session")
def migrated_engine(database_url: str) -> Iterator[Engine]:
    """An engine over a database migrated to head."""
    engine = make_engine(database_url)
    upgrade_engine(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def session(migrated_engine: Engine) -> Iterator[Session]:
    """A session inside a transaction that is rolled back after the test."""
    with migrated_engine.connect() as connection:
        transaction = connection.begin()
        with Session(bind=connection, join_transaction_mode="create_savepoint") as db_session:
            yield db_session
        transaction.rollback()


@dataclass
class LiveAPI:
    """A real uvicorn server running the app (API + controller) on one database."""

    url: str
    client: httpx.Client
    sessions: sessionmaker[Session]

    def submit(self, spec: dict[str, Any]) -> dict[str, Any]:
        """POST a sweep, asserting it was accepted."""
        response = self.client.post("/sweeps", json=spec)
        assert response.status_code == 201, response.text
        sweep: dict[str, Any] = response.json()
        return sweep

    def wait(self, sweep_id: int, *, timeout: float = 180.0) -> dict[str, Any]:
        """Poll a sweep until it finishes; its final state."""

        def finished() -> dict[str, Any] | None:
            sweep: dict[str, Any] = self.client.get(f"/sweeps/{sweep_id}").json()
            return sweep if sweep["status"] not in ("pending", "running") else None

        return wait_until(finished, timeout=timeout, what=f"sweep {sweep_id} to finish")

    def trials(self, sweep_id: int, **params: Any) -> list[dict[str, Any]]:
        """Every trial of a sweep (one page of up to 1000)."""
        page = self.client.get(f"/sweeps/{sweep_id}/trials", params={"limit": 1000, **params})
        assert page.status_code == 200, page.text
        assert page.json()["next_cursor"] is None
        items: list[dict[str, Any]] = page.json()["items"]
        return items


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class Served:
    """A server running in this process: its base URL and an admin's token."""

    url: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        """The admin's Authorization header."""
        return {"Authorization": f"Bearer {self.token}"}


def admin_token(database_url: str) -> str:
    """A fresh token of the first start's admin, made in the database (as `optisweep user`
    would for someone who lost theirs)."""
    engine = make_engine(database_url)
    try:
        with make_sessionmaker(engine)() as session:
            _, token = accounts.create_token(
                session, accounts.user_named(session, "admin"), name="tests", days=1
            )
            session.commit()
    finally:
        engine.dispose()
    return token


@contextmanager
def running_server(settings: Settings, *, run_controller: bool = True) -> Iterator[Served]:
    """The app under a real uvicorn server in this process; its base URL and the admin's
    token (the first start's, from its own token file, or a fresh one on a used database)."""
    folder = Path(tempfile.mkdtemp(prefix="optisweep-token-"))  # its own: no other server's
    settings = settings.model_copy(update={"token_file": str(folder / "token")})
    port = free_port()
    app = create_app(settings, run_controller=run_controller)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped while starting"
        assert time.monotonic() < deadline, "uvicorn did not start within 60 s"
        time.sleep(0.05)
    token = read_token_file(Path(str(settings.token_file))) or admin_token(settings.database_url)
    try:
        yield Served(f"http://127.0.0.1:{port}", token)
    finally:
        server.should_exit = True
        thread.join(30)


@pytest.fixture(scope="session")
def live_api(database_url: str, ray_local: None) -> Iterator[LiveAPI]:
    """The app under a real uvicorn server in this process, sharing the session's Ray."""
    engine = make_engine(database_url)
    settings = Settings(
        database_url=database_url,
        rate_limit="100000/minute",
        rate_limit_anonymous="100000/minute",
    )
    with (
        running_server(settings) as served,
        httpx.Client(base_url=f"{served.url}/api/v1", timeout=30, headers=served.headers) as client,
    ):
        yield LiveAPI(url=served.url, client=client, sessions=make_sessionmaker(engine))
    engine.dispose()


@pytest.fixture(scope="session")
def finished_grid(live_api: LiveAPI) -> dict[str, Any]:
    """A 9-trial grid sweep on rosenbrock, run to the end (one per database backend)."""
    from tests.service.sweep_specs import grid_spec

    response = live_api.client.post("/sweeps", json=grid_spec())
    assert response.status_code == 201, response.text
    assert response.headers["location"].endswith(f"/api/v1/sweeps/{response.json()['id']}")
    assert response.json()["num_trials"] == 9
    return live_api.wait(response.json()["id"])
