"""What the optisweep commands share: the app, options, the client, errors and how results
print."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console, Group
from rich.markup import escape
from rich.table import Table

from optisweep.service.client import DEFAULT_URL as DEFAULT_URL
from optisweep.service.client import Client, Leaderboard, LeaderboardEntry, OptisweepError
from optisweep.service.client.api import read_spec_file
from optisweep.service.client.errors import field_errors
from optisweep.service.client.sweep import counts_text as counts_text
from optisweep.service.client.sweep import progress_bar as progress_bar

# Plain help (click's): typer's rich panels show every flag as "--wait <bool>".
app = typer.Typer(
    help="optisweep: hyperparameter sweeps over neural-network optimizers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
db_app = typer.Typer(help="Database commands.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(db_app, name="db")
token_app = typer.Typer(help="Your API tokens.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(token_app, name="token")
project_app = typer.Typer(
    help="Projects and their members.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(project_app, name="project")
user_app = typer.Typer(help="Users (admins).", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(user_app, name="user")
console = Console()
errors = Console(stderr=True)


JsonOption = Annotated[
    bool, typer.Option("--json", help="Print the API's answer as JSON instead of tables.")
]


def print_json(answer: Any) -> None:
    """The API's answer as indented JSON on stdout (what --json prints: one document)."""
    print(json.dumps(answer, indent=2))


UrlOption = Annotated[
    str, typer.Option("--url", envvar="OPTISWEEP_URL", help="The optisweep server's base URL.")
]
SpecFile = Annotated[Path, typer.Argument(help="Sweep spec, YAML or JSON.")]
ProjectOption = Annotated[
    str | None,
    typer.Option("--project", help="The project (default: your only one, or 'default')."),
]
TokenDays = Annotated[int, typer.Option(min=1, max=365, help="Days until it expires.")]
DatabaseUrl = Annotated[
    str | None,
    typer.Option("--database-url", help="Defaults to OPTISWEEP_DATABASE_URL, else sqlite."),
]


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``message`` as a one-line error; the Exit to raise with ``code``. The message is
    text: brackets in it (``optisweep[server]``, ``a[0]``) are printed, not read as markup."""
    errors.print(
        f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True, markup=True
    )
    return typer.Exit(code=code)


def format_errors(details: list[dict[str, Any]]) -> str:
    """Validation errors (FastAPI's 422 detail or pydantic's errors()) as one line."""
    return "; ".join(str(error) for error in field_errors(details))


def load_spec(path: Path) -> dict[str, Any]:
    """A spec file as a dict; a one-line error (exit code 2) when it cannot be read."""
    try:
        return read_spec_file(path)
    except OptisweepError as exc:
        raise fail(str(exc), code=exc.exit_code) from None


@contextmanager
def connect(url: str, *, token: str | None = None, timeout: float = 30) -> Iterator[Client]:
    """A Client for ``url``; any OptisweepError it raises is printed as one line and exits
    (code 2 for what the user can fix, 1 for the server or network)."""
    try:
        with Client(url, token, timeout=timeout) as client:
            yield client
    except OptisweepError as exc:
        raise fail(str(exc), code=exc.exit_code) from None


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "(" + ", ".join(fmt(v) for v in value) + ")"
    return "-" if value is None else str(value)


def hyperparameters_text(
    hyperparameters: dict[str, Any], settings: dict[str, Any] | None = None
) -> str:
    shown = {k: v for k, v in hyperparameters.items() if v not in (0, 0.0, False)}
    text = " ".join(f"{name}={fmt(value)}" for name, value in shown.items())
    for name, value in (settings or {}).items():  # batch size, clipping, schedule: searched
        if isinstance(value, dict):  # a schedule: its kind and the parameters it reads
            inner = ",".join(f"{k}={fmt(v)}" for k, v in value.items() if k != "kind")
            text += f" {name}={value.get('kind')}" + (f"({inner})" if inner else "")
            continue
        text += f" {name}={'none' if value is None else fmt(value)}"
    return text


def leaderboard_table(board: Leaderboard) -> Table | Group:
    """The best trial per optimizer family as a rich table; with several objectives, their
    Pareto front as a second table under it."""
    table = Table(
        title=f"Leaderboard: {board.metric} ({board.mode}, {board.epoch} epoch)",
        caption=board.statistics or None,
    )
    repeats = any(entry.repeats > 1 for entry in board)
    named = f"{board.metric} ({board.epoch} epoch)"
    value = f"{named} mean ± std (n) [95% CI]" if repeats else named
    columns = ["#", "optimizer", value, *(["vs #1"] if repeats else []), "trial", "epochs"]
    for column in (*columns, "hyperparameters", "ranked"):
        right = column in ("#", "trial", "epochs", "ranked")
        table.add_column(column, justify="right" if right else "left")
    for entry in board:
        trial = entry.trial
        shown = fmt(trial.objective)
        versus = []
        if repeats:
            spread = fmt(entry.objective_std) if entry.objective_std is not None else "-"
            shown = f"{fmt(entry.objective_mean)} ± {spread} ({entry.repeats})"
            if entry.objective_ci95:
                low, high = entry.objective_ci95
                shown += f" [{fmt(low)}, {fmt(high)}]"
            versus = [_versus(entry)]
        if entry.stopped_at is not None:  # ranks after every family with a full-length trial
            shown += f" (stopped at epoch {entry.stopped_at})"
        table.add_row(
            str(entry.rank),
            entry.optimizer,
            shown,
            *versus,
            str(trial.number),
            str(trial.epochs_run),
            hyperparameters_text(trial.hyperparameters, trial.settings),
            str(entry.ranked_trials),
        )
    if board.pareto_front is None:
        return table
    return Group(table, pareto_table(board))


def pareto_table(board: Leaderboard) -> Table:
    """A multi-objective sweep's Pareto front as a rich table, best by the primary first."""
    names = [f"{o.metric} ({o.mode})" for o in board.objectives]
    table = Table(title=f"Pareto front: {', '.join(names)}")
    for column in ("trial", "optimizer", *names):
        table.add_column(column, justify="left" if column == "optimizer" else "right")
    for point in board.pareto_front or []:
        table.add_row(str(point.trial), point.optimizer, *(fmt(v) for v in point.values))
    return table


def _versus(entry: LeaderboardEntry) -> str:
    """How a family compares with the leader: tied (not distinguishable) or behind."""
    if entry.rank == 1:
        return "leader"
    if entry.p_value is None:
        return "-"
    verdict = "tied" if entry.tied_with_leader else "behind"
    return f"{verdict} (p={entry.p_value:.2g})"


def done_count(counts: dict[str, int]) -> int:
    """How many trials ended (any way), from counts per status."""
    return sum(count for name, count in counts.items() if name not in ("pending", "running"))


def _version(shown: bool) -> None:
    if shown:
        console.print(f"optisweep {package_version('optisweep')}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """optisweep: hyperparameter sweeps over neural-network optimizers."""
