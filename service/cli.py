"""The optisweep command line (typer); more commands arrive with the HTTP service."""

from __future__ import annotations

import typer
from rich.console import Console
from sqlalchemy import inspect
from sqlalchemy.exc import ArgumentError, OperationalError

from service.config import Settings
from service.db.migrate import upgrade
from service.db.session import make_engine

app = typer.Typer(help="optisweep: hyperparameter sweeps over neural-network optimizers.")
db_app = typer.Typer(help="Database commands.")
app.add_typer(db_app, name="db")
console = Console(stderr=True)


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code=2)


@db_app.command("upgrade")
def db_upgrade(
    database_url: str = typer.Option(
        None, "--database-url", help="Defaults to OPTISWEEP_DATABASE_URL, else sqlite."
    ),
) -> None:
    """Apply every migration to the database."""
    url = database_url or Settings().database_url
    try:
        upgrade(url)
        tables = sorted(inspect(make_engine(url)).get_table_names())
    except (ArgumentError, OperationalError) as exc:
        raise _fail(f"database-url {url!r}: {str(exc).splitlines()[0]}") from None
    typer.echo(f"database at {url} is at head ({', '.join(tables)})")


@app.callback()
def main() -> None:
    """optisweep: hyperparameter sweeps over neural-network optimizers."""


if __name__ == "__main__":
    app()
