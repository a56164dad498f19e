"""Database fixtures: the same tests run on SQLite and on the real PostgreSQL.

PostgreSQL tests skip with a reason where no server answers, except under
OPTISWEEP_REQUIRE_POSTGRES=1 (set by .ci/run), where a missing server fails them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from service.db.migrate import upgrade_engine
from service.db.session import make_engine

POSTGRES_ADMIN_URL = os.environ.get(
    "OPTISWEEP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


def _postgres_available() -> str | None:
    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=3):
            return None
    except psycopg.OperationalError as exc:
        return f"PostgreSQL at {POSTGRES_ADMIN_URL} is not reachable: {exc}".splitlines()[0]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test session, dropped afterwards."""
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
