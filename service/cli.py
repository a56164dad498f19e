"""The optisweep command line: serve, submit, status, trials, cancel, run, db upgrade."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import inspect
from sqlalchemy.exc import ArgumentError, OperationalError

from service.config import Settings
from service.db.migrate import upgrade
from service.db.session import make_engine
from service.errors import InputError
from service.yaml_spec import load_spec_text

app = typer.Typer(
    help="optisweep: hyperparameter sweeps over neural-network optimizers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database commands.", no_args_is_help=True)
app.add_typer(db_app, name="db")
console = Console()
errors = Console(stderr=True)

API = "/api/v1"
FINISHED = ("completed", "cancelled", "failed")
DEFAULT_URL = "http://127.0.0.1:8000"
_TAGS = {"float", "int", "choice", "fixed"}
"""Discriminator tags pydantic puts in error locations; users never wrote them."""

UrlOption = Annotated[
    str, typer.Option("--url", envvar="OPTISWEEP_URL", help="The optisweep server's base URL.")
]
SpecFile = Annotated[Path, typer.Argument(help="Sweep spec, YAML or JSON.")]
DatabaseUrl = Annotated[
    str | None,
    typer.Option("--database-url", help="Defaults to OPTISWEEP_DATABASE_URL, else sqlite."),
]


def _fail(message: str, code: int = 2) -> typer.Exit:
    errors.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True, markup=True)
    return typer.Exit(code=code)


def format_errors(details: list[dict[str, Any]]) -> str:
    """Validation errors (FastAPI's 422 detail or pydantic's errors()) as one line."""
    parts = []
    for detail in details:
        loc = [str(part) for part in detail.get("loc", []) if part != "body" and part not in _TAGS]
        message = str(detail.get("msg", "")).removeprefix("Value error, ")
        parts.append(f"{'.'.join(loc)}: {message}" if loc else message)
    return "; ".join(parts)


def _load_spec(path: Path) -> dict[str, Any]:
    try:
        return load_spec_text(path.read_text())
    except OSError as exc:
        raise _fail(f"spec {str(path)!r}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise _fail(f"spec {str(path)!r}: not UTF-8 text") from None
    except InputError as exc:
        error = {"loc": exc.loc, "msg": str(exc)}
        raise _fail(f"spec {str(path)!r}: {format_errors([error])}") from None


@contextmanager
def _client(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url.rstrip("/") + API, timeout=30) as client:
        try:
            yield client
        except httpx.TransportError as exc:
            raise _fail(
                f"no optisweep server answers at {url} ({type(exc).__name__}); "
                "start one with `optisweep serve` or `make run`",
                code=1,
            ) from None


def _get(client: httpx.Client, path: str, **params: Any) -> Any:
    response = client.get(path, params={k: v for k, v in params.items() if v is not None})
    return _json(response)


def _json(response: httpx.Response) -> Any:
    if response.status_code == 422:
        raise _fail(format_errors(response.json()["detail"]))
    if response.status_code in (404, 409):
        raise _fail(response.json()["detail"])
    if response.is_error:
        raise _fail(f"server answered {response.status_code}: {response.text[:200]}", code=1)
    return response.json()


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "(" + ", ".join(_fmt(v) for v in value) + ")"
    return "-" if value is None else str(value)


def _hyperparameters(hyperparameters: dict[str, Any]) -> str:
    shown = {k: v for k, v in hyperparameters.items() if v not in (0, 0.0, False)}
    return " ".join(f"{name}={_fmt(value)}" for name, value in shown.items())


def leaderboard_table(board: dict[str, Any]) -> Table:
    """The best trial per optimizer family as a rich table."""
    table = Table(title=f"Leaderboard: {board['metric']} ({board['mode']})")
    repeats = any(entry.get("repeats", 1) > 1 for entry in board["entries"])
    value = f"{board['metric']} mean ± std (n)" if repeats else board["metric"]
    for column in ("#", "optimizer", value, "trial", "hyperparameters", "ranked"):
        table.add_column(column, justify="right" if column in ("#", "trial", "ranked") else "left")
    for entry in board["entries"]:
        trial = entry["trial"]
        shown = _fmt(trial["objective"])
        if repeats:
            spread = _fmt(entry["objective_std"]) if entry["objective_std"] is not None else "-"
            shown = f"{_fmt(entry['objective_mean'])} ± {spread} ({entry['repeats']})"
        table.add_row(
            str(entry["rank"]),
            entry["optimizer"],
            shown,
            str(trial["number"]),
            _hyperparameters(trial["hyperparameters"]),
            str(entry["ranked_trials"]),
        )
    return table


def _counts_text(counts: dict[str, int]) -> str:
    return " ".join(f"{name}={count}" for name, count in counts.items() if count)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[counts]}"),
        TimeElapsedColumn(),
        console=console,
    )


def _done(counts: dict[str, int]) -> int:
    return sum(count for name, count in counts.items() if name not in ("pending", "running"))


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Defaults to OPTISWEEP_HOST, else 127.0.0.1.")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Defaults to OPTISWEEP_PORT, else 8000.")] = None,
) -> None:
    """Run the API and the controller (SQLite and a local Ray unless configured otherwise)."""
    import uvicorn

    from service.main import create_app

    settings = Settings()
    host = host or settings.host
    port = port or settings.port
    with socket.socket() as probe:  # fail before starting Ray, not after
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise _fail(f"port {port}: cannot listen on {host}: {exc.strerror}") from None
    console.print(
        f"optisweep on http://{host}:{port} (API docs at /docs), db {settings.database_url}"
    )
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")


@app.command()
def submit(
    spec_file: SpecFile,
    wait: Annotated[
        bool, typer.Option("--wait", help="Show progress until done, then the leaderboard.")
    ] = False,
    url: UrlOption = DEFAULT_URL,
) -> None:
    """Submit a sweep to the server; with --wait, follow it and print the leaderboard."""
    spec = _load_spec(spec_file)
    with _client(url) as client:
        sweep = _json(client.post("/sweeps", json=spec))
        console.print(f"sweep {sweep['id']} submitted: {sweep['num_trials']} trials")
        console.print(f"watch it live: {url.rstrip('/')}/sweeps/{sweep['id']}", soft_wrap=True)
        if not wait:
            console.print(f"follow it with: optisweep status {sweep['id']}")
            return
        try:
            sweep = _follow(client, sweep)
        except KeyboardInterrupt:
            console.print(f"stopped watching; sweep {sweep['id']} goes on (optisweep status)")
            raise typer.Exit(130) from None
        _finish(client, sweep)


def _follow(client: httpx.Client, sweep: dict[str, Any]) -> dict[str, Any]:
    with _progress() as progress:
        task = progress.add_task(f"sweep {sweep['id']}", total=sweep["num_trials"], counts="")
        while sweep["status"] not in FINISHED:
            time.sleep(0.5)
            sweep = _get(client, f"/sweeps/{sweep['id']}")
            progress.update(
                task,
                total=sweep["num_trials"],
                completed=_done(sweep["trial_counts"]),
                counts=_counts_text(sweep["trial_counts"]),
            )
    return sweep


def _finish(client: httpx.Client, sweep: dict[str, Any]) -> None:
    console.print(
        f"sweep {sweep['id']} {sweep['status']}: {_counts_text(sweep['trial_counts'])}"
        + (f" ({sweep['error']})" if sweep.get("error") else "")
    )
    board = _get(client, f"/sweeps/{sweep['id']}/leaderboard")
    console.print(leaderboard_table(board))
    if sweep["status"] == "failed":
        raise typer.Exit(1)


@app.command()
def status(
    sweep_id: Annotated[
        int | None, typer.Argument(help="A sweep id; all sweeps when left out.")
    ] = None,
    url: UrlOption = DEFAULT_URL,
) -> None:
    """List sweeps, or show one sweep with its trial counts and leaderboard."""
    with _client(url) as client:
        if sweep_id is None:
            page = _get(client, "/sweeps", limit=50)
            table = Table(title="Sweeps (newest first)")
            for column in ("id", "name", "status", "done", "trials", "created"):
                table.add_column(column)
            for sweep in page["items"]:
                table.add_row(
                    str(sweep["id"]),
                    sweep["name"],
                    sweep["status"],
                    str(_done(sweep["trial_counts"])),
                    str(sweep["num_trials"]),
                    sweep["created_at"][:19].replace("T", " "),
                )
            console.print(table)
            return
        sweep = _get(client, f"/sweeps/{sweep_id}")
        console.print(
            f"sweep {sweep['id']} {sweep['name']!r}: {sweep['status']}, "
            f"{_done(sweep['trial_counts'])}/{sweep['num_trials']} done "
            f"({_counts_text(sweep['trial_counts']) or 'no trials yet'})"
            + (f"; {sweep['error']}" if sweep.get("error") else "")
        )
        console.print(leaderboard_table(_get(client, f"/sweeps/{sweep_id}/leaderboard")))


@app.command()
def trials(
    sweep_id: Annotated[int, typer.Argument(help="The sweep whose trials to list.")],
    optimizer: Annotated[str | None, typer.Option(help="Only this optimizer family.")] = None,
    trial_status: Annotated[
        str | None, typer.Option("--status", help="Only trials in this status.")
    ] = None,
    sort: Annotated[str, typer.Option(help="number, objective or best_objective.")] = "objective",
    limit: Annotated[int, typer.Option(help="How many trials to show.")] = 50,
    url: UrlOption = DEFAULT_URL,
) -> None:
    """A sweep's trials as a table, best objective first by default."""
    with _client(url) as client:
        page = _get(
            client,
            f"/sweeps/{sweep_id}/trials",
            optimizer=optimizer,
            status=trial_status,
            sort=sort,
            limit=limit,
        )
    table = Table(title=f"Trials of sweep {sweep_id}")
    for column in ("trial", "optimizer", "status", "objective", "best", "hyperparameters", "id"):
        table.add_column(column)
    for trial in page["items"]:
        table.add_row(
            str(trial["number"]),
            trial["optimizer"],
            trial["status"],
            _fmt(trial["objective"]),
            _fmt(trial["best_objective"]),
            _hyperparameters(trial["hyperparameters"]),
            str(trial["id"]),
        )
    console.print(table)


@app.command()
def cancel(
    sweep_id: Annotated[int, typer.Argument(help="The sweep to cancel.")],
    url: UrlOption = DEFAULT_URL,
) -> None:
    """Cancel a pending or running sweep; its running trials stop after their current epoch."""
    with _client(url) as client:
        sweep = _json(client.post(f"/sweeps/{sweep_id}/cancel"))
    console.print(f"sweep {sweep['id']} {sweep['status']}")


@app.command()
def run(
    spec_file: SpecFile,
    database_url: DatabaseUrl = None,
) -> None:
    """Run a sweep in this process, without a server (e.g. `ray job submit -- optisweep run`).

    Joins OPTISWEEP_RAY_ADDRESS or RAY_ADDRESS when set, else starts a local Ray. Results go to
    the same database the server and dashboard read.
    """
    from service.controller.loop import Controller
    from service.controller.ray_runtime import init_ray
    from service.db.session import make_sessionmaker
    from service.errors import SpecError
    from service.sweeps.repository import get_sweep, trial_counts
    from service.sweeps.schemas import SweepCreate
    from service.sweeps.service import checked_size, submit_sweep
    from service.sweeps.views import leaderboard_read

    settings = Settings()
    if database_url:
        settings.database_url = database_url
    data = _load_spec(spec_file)
    try:  # the spec first: a bad one fails before Ray and the database start
        spec = SweepCreate.model_validate(data)
        checked_size(spec, max_trials=settings.max_trials)
    except ValidationError as exc:
        raise _fail(format_errors([dict(e) for e in exc.errors()])) from None
    except SpecError as exc:
        raise _fail(f"{exc.field}: {exc}") from None
    init_ray(settings.ray_address)
    try:
        engine = make_engine(settings.database_url)
        upgrade(settings.database_url)
    except (ArgumentError, OperationalError) as exc:
        raise _fail(f"database-url {settings.database_url!r}: {str(exc).splitlines()[0]}") from None
    sessions = make_sessionmaker(engine)
    controller_id = f"run-{uuid.uuid4().hex[:12]}"
    try:
        with sessions.begin() as session:
            sweep = submit_sweep(
                session,
                spec,
                max_trials=settings.max_trials,
                feasible=Controller.check_feasible,
                claimed_by=controller_id,
            )
            sweep_id, size = sweep.id, sweep.num_trials
    except SpecError as exc:
        raise _fail(f"{exc.field}: {exc}") from None
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
    with _progress() as progress:
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
            progress.update(task, completed=_done(counts), counts=_counts_text(counts))

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
    with sessions() as session:
        sweep = get_sweep(session, sweep_id)
        board = leaderboard_read(session, sweep, checkpoint_dir=settings.checkpoint_dir)
    console.print(
        f"sweep {sweep_id} {sweep.status.value}" + (f" ({sweep.error})" if sweep.error else "")
    )
    console.print(leaderboard_table(json.loads(board.model_dump_json())))
    if sweep.status == "failed":
        raise typer.Exit(1)


@db_app.command("upgrade")
def db_upgrade(
    database_url: DatabaseUrl = None,
) -> None:
    """Apply every migration to the database."""
    url = database_url or Settings().database_url
    try:
        upgrade(url)
        tables = sorted(inspect(make_engine(url)).get_table_names())
    except (ArgumentError, OperationalError) as exc:
        raise _fail(f"database-url {url!r}: {str(exc).splitlines()[0]}") from None
    typer.echo(f"database at {url} is at head ({', '.join(tables)})")


if __name__ == "__main__":
    app()
