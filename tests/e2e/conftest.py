"""Helpers for end-to-end tests: `optisweep serve` as a subprocess, the CLI as a user runs it."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import httpx
import pytest

from optisweep.service.accounts.tokens import read_token_file, write_token_file
from tests.conftest import clean_environment
from tests.service.conftest import admin_token, free_port

OPTISWEEP = shutil.which("optisweep") or str(Path(".venv/bin/optisweep").resolve())

SERVERS: dict[str, Server] = {}
"""Each started server by URL: the CLI pointed at a server signs in with its token file."""


class Server:
    """`optisweep serve` in a subprocess on a free port, with its own local Ray, and its own
    token file (the first start's admin token, as the CLI reads it)."""

    def __init__(
        self,
        *,
        database_url: str,
        log: Path,
        env: dict[str, str] | None = None,
        command: str = OPTISWEEP,
        cwd: Path | None = None,
    ) -> None:
        self.command, self.cwd = command, cwd
        self.log = log
        self._log: IO[str] = log.open("a")
        self.database_url = database_url
        self.token_file = log.parent / f"token-{uuid.uuid4().hex[:8]}"
        self._env = clean_environment(
            OPTISWEEP_DATABASE_URL=database_url,
            OPTISWEEP_TOKEN_FILE=str(self.token_file),
            **(env or {}),
        )
        self._start()

    @property
    def token(self) -> str:
        """The admin's token: the first start's, or (on a database that has users already, as
        after a restart) a fresh one, kept in this server's token file for the CLI."""
        token = read_token_file(self.token_file)
        if token is None:
            token = admin_token(self.database_url)
            write_token_file(self.token_file, token)
        return token

    @property
    def headers(self) -> dict[str, str]:
        """The admin's Authorization header."""
        return {"Authorization": f"Bearer {self.token}"}

    def _start(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        SERVERS[self.url] = self
        self._log.flush()
        self._log_offset = self.log.stat().st_size  # this start's output begins here
        self.process = subprocess.Popen(
            [self.command, "serve", "--port", str(self.port)],
            env=self._env,
            cwd=self.cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Block until /readyz says the database and Ray answer.

        The port was free when chosen, but the server binds it only after starting Ray, whose
        processes take random ports too: if one took it, start again on another port.
        """
        deadline = time.monotonic() + timeout
        retries = 3
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = self.log.read_bytes()[self._log_offset :].decode(errors="replace")
                if "address already in use" in output.lower() and retries > 0:
                    retries -= 1
                    self._start()
                    continue
                raise AssertionError(output[-3000:])
            try:
                if httpx.get(f"{self.url}/api/v1/readyz", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"server not ready in {timeout} s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> int:
        """Stop it as Ctrl-C would (SIGINT: graceful shutdown, Ray shut down with it)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._log.close()
        return self.process.returncode


@pytest.fixture(scope="session")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One `optisweep serve` on a fresh SQLite file, its debugging routes on, shared by the
    end-to-end tests that need only a working server (not a fresh or a restarted one): one
    start of a server and its Ray instead of one per module. Tests on it never assume ids."""
    root = tmp_path_factory.mktemp("shared")
    running = Server(
        database_url=f"sqlite:///{root / 'shared.db'}",
        log=root / "server.log",
        env={"OPTISWEEP_DEBUG": "1"},
    )
    running.wait_ready()
    yield running
    assert running.stop() == 0


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[type[Server]]:
    """Start servers with ``start_server(database_url=...)``; all are stopped after the test."""
    started: list[Server] = []

    class _Tracked(Server):
        def __init__(self, *, database_url: str, env: dict[str, str] | None = None) -> None:
            super().__init__(database_url=database_url, log=tmp_path / "server.log", env=env)
            started.append(self)

    yield _Tracked
    for server in started:
        server.stop()


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `optisweep ARGS` as a user would (in ``cwd``), signed in to the server its --url
    names (as the first start left it for them); never raises on a non-zero exit."""
    url = args[args.index("--url") + 1] if "--url" in args else None
    server = SERVERS.get(url) if url is not None else None
    signed_in = {}
    if server is not None and server.token:  # the first start's token, or a fresh one
        signed_in["OPTISWEEP_TOKEN_FILE"] = str(server.token_file)
    return subprocess.run(
        [OPTISWEEP, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=clean_environment(COLUMNS="200", **{**signed_in, **(env or {})}),
        check=False,
        cwd=cwd,
    )
