"""Commands that run here: serve, run (a controller without a server), db upgrade."""

from __future__ import annotations

import importlib.util
import json
import socket
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError

from optisweep.service.cli.code import CodeDir, job_code
from optisweep.service.cli.common import (
    DatabaseUrl,
    SpecFile,
    TokenDays,
    app,
    console,
    counts_text,
    db_app,
    done_count,
    fail,
    format_errors,
    leaderboard_table,
    load_spec,
    progress_bar,
)
from optisweep.service.client import Leaderboard

if TYPE_CHECKING:  # the commands import these when they run: the CLI starts without torch,
    # SQLAlchemy or Alembic (every `optisweep` call that talks to a server starts sooner)
    from sqlalchemy.orm import Session, sessionmaker

    from optisweep.service.config import Settings
    from optisweep.service.controller.loop import Controller
    from optisweep.service.sweeps.schemas import SweepCreate


SERVER_PACKAGES = ("fastapi", "sqlalchemy", "alembic", "ray", "torch", "optuna")
"""What the commands that run here import: the ``server`` extra's packages."""


def require_server(command: str) -> None:
    """Exit with a one-line message (code 1) when the server's packages are not installed:
    ``pip install optisweep`` is the client alone."""
    missing = [name for name in SERVER_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise fail(
            f"optisweep {command} runs the server, whose packages are not installed "
            f"(missing: {', '.join(missing)}): pip install 'optisweep[server]'",
            code=1,
        )


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Defaults to OPTISWEEP_HOST, else 127.0.0.1.")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Defaults to OPTISWEEP_PORT, else 8000.")] = None,
) -> None:
    """Run the API and the controller (SQLite and a local Ray unless configured otherwise)."""
    require_server("serve")
    import ray

    from optisweep.service.config import Settings
    from optisweep.service.controller.ray_runtime import init_ray, warm_workers

    settings = Settings()
    host = host or settings.host
    port = port or settings.port
    with socket.socket() as probe:  # fail before starting Ray, not after
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise fail(f"port {port}: cannot listen on {host}: {exc.strerror}") from None
    console.print(
        f"optisweep on http://{host}:{port} (API docs at /docs), db {settings.database_url}"
    )
    settings = settings.model_copy(update={"host": host, "port": port})  # trusted hosts, link
    # Ray and the workers' warm-up first: the workers import torch while this process imports
    # the app (torch included), so a fresh server's pool is warm about when it answers.
    started_ray = init_ray(settings.ray_address)
    try:
        warm_workers()
        import uvicorn

        from optisweep.service.main import create_app

        uvicorn.run(create_app(settings), host=host, port=port, log_level="info")
    finally:
        if started_ray:
            ray.shutdown()


@app.command()
def run(
    spec_file: SpecFile,
    database_url: DatabaseUrl = None,
    code: CodeDir = None,
) -> None:
    """Run a sweep in this process, without a server (e.g. `ray job submit -- optisweep run`).

    Joins OPTISWEEP_RAY_ADDRESS or RAY_ADDRESS when set, else starts a local Ray. Results go to
    the same database the server and dashboard read. The sweep's code (``code.path``, or
    ``--code``) goes to the workers as this Ray job's working directory, unless the job was
    submitted with one (``ray job submit --working-dir``).
    """
    require_server("run")
    from sqlalchemy.exc import ArgumentError, OperationalError

    from optisweep.service.config import Settings
    from optisweep.service.controller.loop import Controller
    from optisweep.service.controller.ray_runtime import init_ray
    from optisweep.service.db.migrate import upgrade
    from optisweep.service.db.session import make_engine, make_sessionmaker

    settings = Settings()
    if database_url:
        settings.database_url = database_url
    spec = _checked_spec(spec_file, max_trials=settings.max_trials)  # before Ray and the database
    spec, job_env = job_code(spec, spec_file, code)
    init_ray(settings.ray_address, runtime_env=job_env)
    try:
        engine = make_engine(settings.database_url)
        upgrade(settings.database_url)
    except (ArgumentError, OperationalError) as exc:
        raise fail(f"database-url {settings.database_url!r}: {str(exc).splitlines()[0]}") from None
    sessions = make_sessionmaker(engine)
    controller_id = f"run-{uuid.uuid4().hex[:12]}"
    sweep_id, size = _submitted(sessions, spec, settings=settings, claimed_by=controller_id)
    console.print(f"sweep {sweep_id}: {size} trials, database {settings.database_url}")
    controller = Controller(
        sessions,
        max_trials=settings.max_trials,
        controller_id=controller_id,
        sweep_id=sweep_id,
        lease_seconds=settings.claim_lease_seconds,
        pack_memory_mb=settings.pack_memory_mb,
        checkpoint_dir=settings.checkpoint_dir,
    )
    _drive(controller, sessions, sweep_id, size=size, settings=settings)
    _report(sessions, sweep_id, settings=settings)


def _checked_spec(spec_file: Path, *, max_trials: int) -> SweepCreate:
    """The spec file as a sweep checked in full; a bad one is one line and exit code 2."""
    from optisweep.service.error_text import explained
    from optisweep.service.errors import SpecError
    from optisweep.service.sweeps.schemas import SweepCreate
    from optisweep.service.sweeps.validation import check_sweep

    data = load_spec(spec_file)
    try:
        spec = SweepCreate.model_validate(data)
        # What needs no worker, before Ray starts; submit_sweep checks it in full after.
        check_sweep(spec, max_trials=max_trials, require_worker=False, local_code=True)
    except ValidationError as exc:
        errors = explained([dict(e) for e in exc.errors()], SweepCreate)
        raise fail(format_errors(errors)) from None
    except SpecError as exc:
        raise fail(f"{exc.field}: {exc}") from None
    return spec


def _submitted(
    sessions: sessionmaker[Session], spec: SweepCreate, *, settings: Settings, claimed_by: str
) -> tuple[int, int]:
    """Queue the sweep for this process's controller; its id and trial count."""
    from optisweep.service.controller.inspection import WorkloadInspector
    from optisweep.service.controller.loop import Controller
    from optisweep.service.controller.packing import PackingPolicy
    from optisweep.service.controller.state import ControllerState
    from optisweep.service.errors import SpecError
    from optisweep.service.sweeps.service import submit_sweep

    state = ControllerState(sessions=sessions, max_trials=settings.max_trials, checkpoint_dir=None)
    packing = PackingPolicy(pack_memory_mb=settings.pack_memory_mb)
    inspect = WorkloadInspector(state, packing, timeout=settings.inspect_timeout_seconds)
    try:
        with sessions.begin() as session:
            sweep = submit_sweep(
                session,
                spec,
                max_trials=settings.max_trials,
                largest_node=Controller.largest_node,
                inspect=inspect,
                claimed_by=claimed_by,
            )
            return sweep.id, sweep.num_trials
    except SpecError as exc:
        raise fail(f"{exc.field}: {exc}") from None


def _drive(
    controller: Controller,
    sessions: sessionmaker[Session],
    sweep_id: int,
    *,
    size: int,
    settings: Settings,
) -> None:
    """Run the controller until the sweep ends, with a progress bar; Ctrl-C exits with 130."""
    from optisweep.service.sweeps.repository import trial_counts

    with progress_bar(console) as progress:
        task = progress.add_task(f"sweep {sweep_id}", total=size, counts="")
        last = 0.0

        def show() -> None:
            nonlocal last
            if time.monotonic() - last < 0.5:
                return
            last = time.monotonic()
            with sessions() as session:
                by_status = trial_counts(session, [sweep_id])[sweep_id]
            counts = {status.value: count for status, count in by_status.items()}
            progress.update(task, completed=done_count(counts), counts=counts_text(counts))

        try:
            controller.run_sweep(sweep_id, on_tick=show)
        except KeyboardInterrupt:
            progress.stop()
            console.print(
                f"interrupted: sweep {sweep_id} stays running in the database; a server on it "
                f"takes it over after {settings.claim_lease_seconds:g} s "
                "(optisweep serve, same OPTISWEEP_DATABASE_URL)"
            )
            raise typer.Exit(130) from None
        last = 0.0
        show()


def _report(sessions: sessionmaker[Session], sweep_id: int, *, settings: Settings) -> None:
    """How the sweep ended and its leaderboard; exit code 1 if it failed."""
    from optisweep.service.sweeps.report import optimizer_report
    from optisweep.service.sweeps.repository import get_sweep
    from optisweep.service.sweeps.views import leaderboard_read

    with sessions() as session:
        sweep = get_sweep(session, sweep_id)
        board = leaderboard_read(session, sweep, checkpoint_dir=settings.checkpoint_dir)
        found = optimizer_report(session, sweep)
    console.print(
        f"sweep {sweep_id} {sweep.status.value}" + (f" ({sweep.error})" if sweep.error else "")
    )
    answered = json.loads(board.model_dump_json())  # what the API would answer
    console.print(leaderboard_table(Leaderboard.from_api(answered)))
    console.print(f"Verdict: {found.verdict}", soft_wrap=True)
    if sweep.status == "failed":
        raise typer.Exit(1)


@db_app.command("upgrade")
def db_upgrade(
    database_url: DatabaseUrl = None,
) -> None:
    """Apply every migration to the database."""
    require_server("db upgrade")
    from sqlalchemy import inspect
    from sqlalchemy.exc import ArgumentError, OperationalError

    from optisweep.service.config import Settings
    from optisweep.service.db.migrate import upgrade
    from optisweep.service.db.session import make_engine

    url = database_url or Settings().database_url
    try:
        upgrade(url)
        tables = sorted(inspect(make_engine(url)).get_table_names())
    except (ArgumentError, OperationalError) as exc:
        raise fail(f"database-url {url!r}: {str(exc).splitlines()[0]}") from None
    typer.echo(f"database at {url} is at head ({', '.join(tables)})")


@db_app.command("token")
def db_token(
    user: Annotated[str, typer.Option(help="Whose token (an existing user).")] = "admin",
    days: TokenDays = 90,
    database_url: DatabaseUrl = None,
) -> None:
    """Make a token straight in the database, for who lost theirs (or let it expire): it needs
    the database's credentials, not a token. It goes to the token file, 0600."""
    require_server("db token")
    from sqlalchemy.exc import ArgumentError, OperationalError

    from optisweep.service.accounts import repository as accounts
    from optisweep.service.accounts.tokens import token_file, write_token_file
    from optisweep.service.config import Settings
    from optisweep.service.db.session import make_engine, make_sessionmaker
    from optisweep.service.errors import NotFoundError

    url = database_url or Settings().database_url
    engine = make_engine(url)
    try:
        with make_sessionmaker(engine)() as session:
            found = accounts.user_named(session, user)
            row, token = accounts.create_token(session, found, name="db token", days=days)
            accounts.record(
                session,
                user_id=found.id,
                user_name=found.name,
                action="token.create",
                target=f"token {row.id} ({row.prefix}..., from the database)",
            )
            session.commit()
    except NotFoundError as exc:
        raise fail(f"user: {exc}") from None
    except (ArgumentError, OperationalError) as exc:
        raise fail(f"database-url {url!r}: {str(exc).splitlines()[0]}") from None
    finally:
        engine.dispose()
    path = token_file()
    write_token_file(path, token)
    typer.echo(f"a token of {user}, valid {days} days, is in {path}")
