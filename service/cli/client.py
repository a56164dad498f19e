"""Commands that talk to a server over its REST API: submit, status, trials, cancel."""

from __future__ import annotations

import time
from typing import Annotated, Any

import httpx
import typer
from rich.table import Table

from service.cli.code import MAX_CODE_MB, CodeDir, MaxCodeMb, code_dir, upload, with_package
from service.cli.common import (
    DEFAULT_URL,
    FINISHED,
    ProjectOption,
    SpecFile,
    UrlOption,
    answer,
    api_client,
    app,
    console,
    counts_text,
    done_count,
    fmt,
    get_json,
    hyperparameters_text,
    leaderboard_table,
    load_spec,
    progress_bar,
)


@app.command()
def submit(
    spec_file: SpecFile,
    wait: Annotated[
        bool, typer.Option("--wait", help="Show progress until done, then the leaderboard.")
    ] = False,
    url: UrlOption = DEFAULT_URL,
    code: CodeDir = None,
    max_code_mb: MaxCodeMb = MAX_CODE_MB,
    project: ProjectOption = None,
) -> None:
    """Submit a sweep to the server; with --wait, follow it and print the leaderboard.

    A spec with ``code: {path: DIR}`` (or ``--code DIR``) ships that project to the workers:
    it is zipped (what .gitignore leaves), uploaded once by hash, and named by the sweep.
    """
    spec = load_spec(spec_file)
    directory = code_dir(spec, spec_file, code)
    # A user's workload is checked on a worker before the answer: allow for a cold start.
    with api_client(url, timeout=600) as client:
        if directory is not None:
            package = upload(client, directory, max_mb=max_code_mb, project=project)
            spec = with_package(spec, package)
        params = {"project": project} if project else None
        sweep = answer(client.post("/sweeps", json=spec, params=params))
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
    with progress_bar() as progress:
        task = progress.add_task(f"sweep {sweep['id']}", total=sweep["num_trials"], counts="")
        while sweep["status"] not in FINISHED:
            time.sleep(0.5)
            sweep = get_json(client, f"/sweeps/{sweep['id']}")
            progress.update(
                task,
                total=sweep["num_trials"],
                completed=done_count(sweep["trial_counts"]),
                counts=counts_text(sweep["trial_counts"]),
            )
    return sweep


def _finish(client: httpx.Client, sweep: dict[str, Any]) -> None:
    console.print(
        f"sweep {sweep['id']} {sweep['status']}: {counts_text(sweep['trial_counts'])}"
        + (f" ({sweep['error']})" if sweep.get("error") else "")
    )
    board = get_json(client, f"/sweeps/{sweep['id']}/leaderboard")
    console.print(leaderboard_table(board))
    if sweep["status"] == "failed":
        raise typer.Exit(1)


@app.command()
def status(
    sweep_id: Annotated[
        int | None, typer.Argument(help="A sweep id; all sweeps when left out.")
    ] = None,
    url: UrlOption = DEFAULT_URL,
    project: ProjectOption = None,
) -> None:
    """List sweeps (of your projects, or one), or show one sweep with its trial counts and
    leaderboard."""
    with api_client(url) as client:
        if sweep_id is None:
            page = get_json(client, "/sweeps", limit=50, project=project)
            table = Table(title="Sweeps (newest first)")
            for column in ("id", "name", "status", "done", "trials", "created"):
                table.add_column(column)
            for sweep in page["items"]:
                table.add_row(
                    str(sweep["id"]),
                    sweep["name"],
                    sweep["status"],
                    str(done_count(sweep["trial_counts"])),
                    str(sweep["num_trials"]),
                    sweep["created_at"][:19].replace("T", " "),
                )
            console.print(table)
            return
        sweep = get_json(client, f"/sweeps/{sweep_id}")
        console.print(
            f"sweep {sweep['id']} {sweep['name']!r}: {sweep['status']}, "
            f"{done_count(sweep['trial_counts'])}/{sweep['num_trials']} done "
            f"({counts_text(sweep['trial_counts']) or 'no trials yet'})"
            + (f"; {sweep['error']}" if sweep.get("error") else "")
        )
        console.print(leaderboard_table(get_json(client, f"/sweeps/{sweep_id}/leaderboard")))


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
    with api_client(url) as client:
        page = get_json(
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
            fmt(trial["objective"]),
            fmt(trial["best_objective"]),
            hyperparameters_text(trial["hyperparameters"], trial.get("settings")),
            str(trial["id"]),
        )
    console.print(table)


@app.command()
def report(
    sweep_id: Annotated[int, typer.Argument(help="The sweep to report on.")],
    tolerance: Annotated[
        float,
        typer.Option(min=0.0001, max=0.9999, help="Relative distance from a family's best."),
    ] = 0.02,
    url: UrlOption = DEFAULT_URL,
) -> None:
    """What the sweep says about each optimizer family: its best, its learning-rate basin,
    where it diverged, and one sentence to act on."""
    with api_client(url) as client:
        found = get_json(client, f"/sweeps/{sweep_id}/report", tolerance=tolerance)
    table = Table(title=f"Optimizer report: {found['metric']} ({found['mode']})")
    for column in ("optimizer", "best", "at lr", "lr basin", "decades", "diverged at lr"):
        table.add_column(column)
    for family in found["families"]:
        basin = (
            f"{fmt(family['basin_low'])}..{fmt(family['basin_high'])}"
            if family["basin_low"] is not None
            else "-"
        )
        table.add_row(
            family["optimizer"],
            fmt(family["best_objective"]),
            fmt(family["best_lr"]),
            basin,
            fmt(family["basin_decades"]),
            fmt(family["lowest_diverged_lr"]),
        )
    console.print(table)
    for family in found["families"]:
        console.print(f"- {family['summary']}", soft_wrap=True)


@app.command()
def cancel(
    sweep_id: Annotated[int, typer.Argument(help="The sweep to cancel.")],
    url: UrlOption = DEFAULT_URL,
) -> None:
    """Cancel a pending or running sweep; its running trials stop after their current epoch."""
    with api_client(url) as client:
        sweep = answer(client.post(f"/sweeps/{sweep_id}/cancel"))
    console.print(f"sweep {sweep['id']} {sweep['status']}")
