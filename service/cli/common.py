"""What the optisweep commands share: the app, options, errors and how results print."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from service.accounts.tokens import read_token_file, token_file
from service.errors import InputError
from service.yaml_spec import load_spec_text

app = typer.Typer(
    help="optisweep: hyperparameter sweeps over neural-network optimizers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database commands.", no_args_is_help=True)
app.add_typer(db_app, name="db")
token_app = typer.Typer(help="Your API tokens.", no_args_is_help=True)
app.add_typer(token_app, name="token")
project_app = typer.Typer(help="Projects and their members.", no_args_is_help=True)
app.add_typer(project_app, name="project")
user_app = typer.Typer(help="Users (admins).", no_args_is_help=True)
app.add_typer(user_app, name="user")
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


def load_spec(path: Path) -> dict[str, Any]:
    try:
        return load_spec_text(path.read_text())
    except OSError as exc:
        raise fail(f"spec {str(path)!r}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise fail(f"spec {str(path)!r}: not UTF-8 text") from None
    except InputError as exc:
        error = {"loc": exc.loc, "msg": str(exc)}
        raise fail(f"spec {str(path)!r}: {format_errors([error])}") from None


def cli_token() -> str | None:
    """The token the CLI signs in with: OPTISWEEP_TOKEN, else the token file (which
    ``optisweep login`` and a server's first start write)."""
    return os.environ.get("OPTISWEEP_TOKEN") or read_token_file(token_file())


@contextmanager
def api_client(url: str, *, timeout: float = 30) -> Iterator[httpx.Client]:
    token = cli_token()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(base_url=url.rstrip("/") + API, timeout=timeout, headers=headers) as client:
        try:
            yield client
        except httpx.TransportError as exc:
            raise fail(
                f"no optisweep server answers at {url} ({type(exc).__name__}); "
                "start one with `optisweep serve` or `make run`",
                code=1,
            ) from None


def get_json(client: httpx.Client, path: str, **params: Any) -> Any:
    response = client.get(path, params={k: v for k, v in params.items() if v is not None})
    return answer(response)


def answer(response: httpx.Response) -> Any:
    if response.status_code == 422:
        raise fail(format_errors(response.json()["detail"]))
    if response.status_code == 401:
        raise fail(
            "not signed in: run `optisweep login` with a token (an admin makes one with "
            "`optisweep user create`), or set OPTISWEEP_TOKEN"
        )
    if response.status_code == 429:
        raise fail(f"{response.json()['detail']}", code=1)
    if response.status_code in (403, 404, 409):
        raise fail(response.json()["detail"])
    if response.is_error:
        raise fail(f"server answered {response.status_code}: {response.text[:200]}", code=1)
    return response.json()


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


def leaderboard_table(board: dict[str, Any]) -> Table:
    """The best trial per optimizer family as a rich table."""
    table = Table(
        title=f"Leaderboard: {board['metric']} ({board['mode']})",
        caption=board.get("statistics") or None,
    )
    repeats = any(entry.get("repeats", 1) > 1 for entry in board["entries"])
    value = f"{board['metric']} mean ± std (n) [95% CI]" if repeats else board["metric"]
    columns = ["#", "optimizer", value, *(["vs #1"] if repeats else []), "trial"]
    for column in (*columns, "hyperparameters", "ranked"):
        table.add_column(column, justify="right" if column in ("#", "trial", "ranked") else "left")
    for entry in board["entries"]:
        trial = entry["trial"]
        shown = fmt(trial["objective"])
        versus = []
        if repeats:
            spread = fmt(entry["objective_std"]) if entry["objective_std"] is not None else "-"
            shown = f"{fmt(entry['objective_mean'])} ± {spread} ({entry['repeats']})"
            if entry.get("objective_ci95"):
                low, high = entry["objective_ci95"]
                shown += f" [{fmt(low)}, {fmt(high)}]"
            versus = [_versus(entry)]
        table.add_row(
            str(entry["rank"]),
            entry["optimizer"],
            shown,
            *versus,
            str(trial["number"]),
            hyperparameters_text(trial["hyperparameters"], trial.get("settings")),
            str(entry["ranked_trials"]),
        )
    return table


def _versus(entry: dict[str, Any]) -> str:
    """How a family compares with the leader: tied (not distinguishable) or behind."""
    if entry["rank"] == 1:
        return "leader"
    if entry.get("p_value") is None:
        return "-"
    verdict = "tied" if entry.get("tied_with_leader") else "behind"
    return f"{verdict} (p={entry['p_value']:.2g})"


def counts_text(counts: dict[str, int]) -> str:
    return " ".join(f"{name}={count}" for name, count in counts.items() if count)


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[counts]}"),
        TimeElapsedColumn(),
        console=console,
    )


def done_count(counts: dict[str, int]) -> int:
    return sum(count for name, count in counts.items() if name not in ("pending", "running"))
