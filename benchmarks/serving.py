"""A real `optisweep serve` for benchmarks: a subprocess on a free port, ready before the clock
starts, signed in as the first start's admin, stopped as Ctrl-C would."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

READY_TIMEOUT = 120.0
"""Seconds a server may take to answer /readyz 200 before the benchmark gives up."""


@dataclass(frozen=True)
class Served:
    """A running server: its API's base URL, the admin's Authorization header, its pid."""

    api: str
    headers: dict[str, str]
    pid: int
    ready_seconds: float
    """From starting `optisweep serve` to its /readyz answering 200."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def serve_command(source: Path | None) -> tuple[list[str], Path | None]:
    """The command that serves this checkout's optisweep (its console script), or that of
    another checkout ``source`` (run from there, with it first on PYTHONPATH): before issue 29
    it imported as ``service.cli``, since then as ``optisweep.service.cli``."""
    if source is None:
        return [str(Path(sys.executable).with_name("optisweep"))], None
    linked = (source / "optisweep" / "service").exists()
    module = "optisweep.service.cli" if linked else "service.cli"
    return [sys.executable, "-m", module], source


@contextmanager
def served(
    database_url: str, folder: Path, *, source: Path | None = None, **env: str
) -> Iterator[Served]:
    """`optisweep serve` on ``database_url`` (its token file in ``folder``, ``env`` added as
    OPTISWEEP_* settings), once /readyz answers 200; ``source``: another checkout's server."""
    port = _free_port()
    token_file = folder / "token"
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "OPTISWEEP_"))}
    environment.update(
        OPTISWEEP_DATABASE_URL=database_url,
        OPTISWEEP_TOKEN_FILE=str(token_file),  # the first start's admin token goes here
        OPTISWEEP_RATE_LIMIT="1000000/minute",
        **env,
    )
    command, cwd = serve_command(source)
    if cwd is not None:
        environment["PYTHONPATH"] = str(cwd)
    started = time.perf_counter()
    server = subprocess.Popen(
        [*command, "serve", "--port", str(port)],
        cwd=cwd,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    api = f"http://127.0.0.1:{port}/api/v1"
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"optisweep serve exited with {server.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"optisweep serve not ready in {READY_TIMEOUT:g} s")
            try:
                if httpx.get(f"{api}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        headers = {"Authorization": f"Bearer {token_file.read_text().strip()}"}
        yield Served(api, headers, server.pid, time.perf_counter() - started)
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(120)
