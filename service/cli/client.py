"""Commands that talk to a server through the Python client: submit, status, trials, report,
cancel."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from optisweep.service.cli.code import MAX_CODE_MB, CodeDir, MaxCodeMb, print_upload
from optisweep.service.cli.common import (
    DEFAULT_URL,
    JsonOption,
    ProjectOption,
    SpecFile,
    UrlOption,
    app,
    connect,
    console,
    counts_text,
    fail,
    fmt,
    hyperparameters_text,
    leaderboard_table,
    load_spec,
    print_json,
)
from optisweep.service.client import Sweep


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
    warm_start: Annotated[
        list[int] | None,
        typer.Option(
            "--warm-start",
            min=1,
            metavar="ID",
            help="An earlier sweep's id whose finished trials the searcher learns from first "
            "(repeat for several; the spec's search.warm_start).",
        ),
    ] = None,
) -> None:
    """Submit a sweep to the server; with --wait, follow it and print the leaderboard.

    A spec with ``code: {path: DIR}`` (or ``--code DIR``) ships that project to the workers:
    it is zipped (what .gitignore leaves), uploaded once by hash, and named by the sweep.
    """
    load_spec(spec_file)  # a spec file that cannot be read fails before any connection
    # A user's workload is checked on a worker before the answer: allow for a cold start.
    with connect(url, timeout=600) as client:
        sweep = client.submit(
            spec_file,
            code=code,
            project=project,
            max_code_mb=max_code_mb,
            warm_start=warm_start,
        )
        if sweep.code is not None:
            print_upload(sweep.code)
        console.print(f"sweep {sweep.id} submitted: {sweep.info.num_trials} trials")
        console.print(f"watch it live: {sweep.url}", soft_wrap=True)
        if not wait:
            console.print(f"follow it with: optisweep status {sweep.id}")
            return
        _follow(sweep)


def _finish(sweep: Sweep) -> None:
    info = sweep.info
    console.print(
        f"sweep {info.id} {info.status}: {counts_text(info.trial_counts)}"
        + (f" ({info.error})" if info.error else "")
    )
    console.print(leaderboard_table(sweep.leaderboard()))
    report = sweep.report()
    console.print(f"Verdict: {report.verdict}", soft_wrap=True)
    if report.warm_start is not None:
        console.print(report.warm_start.summary, soft_wrap=True)
    if report.scale_study is not None:
        console.print(f"Scale study: {report.scale_study.summary}", soft_wrap=True)
    if info.status == "failed":
        raise typer.Exit(1)


@app.command()
def status(
    sweep_id: Annotated[
        int | None, typer.Argument(help="A sweep id; all sweeps when left out.")
    ] = None,
    url: UrlOption = DEFAULT_URL,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """List sweeps (of your projects, or one), or show one sweep with its trial counts and
    leaderboard."""
    with connect(url) as client:
        if as_json:
            print_json(
                list(client.pages("/sweeps", limit=50, project=project))
                if sweep_id is None
                else {
                    "sweep": client.request("GET", f"/sweeps/{sweep_id}"),
                    "leaderboard": client.request("GET", f"/sweeps/{sweep_id}/leaderboard"),
                }
            )
            return
        if sweep_id is None:
            table = Table(title="Sweeps (newest first)")
            for column in ("id", "name", "status", "done", "trials", "created"):
                table.add_column(column)
            for info in client.sweeps(project=project, limit=50):
                table.add_row(
                    str(info.id),
                    info.name,
                    info.status,
                    str(info.done),
                    str(info.num_trials),
                    info.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                )
            console.print(table)
            return
        sweep = client.sweep(sweep_id)
        info = sweep.info
        console.print(
            f"sweep {info.id} {info.name!r}: {info.status}, {info.done}/{info.num_trials} done "
            f"({counts_text(info.trial_counts) or 'no trials yet'})"
            + (f"; {info.error}" if info.error else "")
        )
        console.print(leaderboard_table(sweep.leaderboard()))


@app.command()
def trials(
    sweep_id: Annotated[int, typer.Argument(help="The sweep whose trials to list.")],
    optimizer: Annotated[str | None, typer.Option(help="Only this optimizer family.")] = None,
    trial_status: Annotated[
        str | None, typer.Option("--status", help="Only trials in this status.")
    ] = None,
    sort: Annotated[str, typer.Option(help="number, objective or best_objective.")] = "objective",
    limit: Annotated[int, typer.Option(help="How many trials to show.", min=1)] = 50,
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """A sweep's trials as a table, best objective first by default."""
    with connect(url) as client:
        if as_json:
            path = f"/sweeps/{sweep_id}/trials"
            filters = {"optimizer": optimizer, "status": trial_status, "sort": sort}
            print_json(list(client.pages(path, limit=limit, **filters)))
            return
        found = client.sweep(sweep_id).trials(
            optimizer=optimizer, status=trial_status, sort=sort, limit=limit
        )
    table = Table(title=f"Trials of sweep {sweep_id}")
    columns = ("trial", "optimizer", "status", "objective", "best epoch", "epochs")
    for column in (*columns, "hyperparameters"):
        table.add_column(column)
    for trial in found:
        table.add_row(
            str(trial.number),
            trial.optimizer,
            trial.status,
            fmt(trial.objective),
            fmt(trial.best_objective),
            str(trial.epochs_run),
            hyperparameters_text(trial.hyperparameters, trial.settings),
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
    as_json: JsonOption = False,
) -> None:
    """What the sweep says about each optimizer family: its best, its learning-rate basin,
    where it diverged, and one sentence to act on."""
    with connect(url) as client:
        if as_json:
            params = {"tolerance": tolerance}
            print_json(client.request("GET", f"/sweeps/{sweep_id}/report", params=params))
            return
        found = client.sweep(sweep_id).report(tolerance=tolerance)
    console.print(f"Verdict: {found.verdict}", soft_wrap=True)
    if found.warm_start is not None:
        console.print(found.warm_start.summary, soft_wrap=True)
    if found.scale_study is not None:
        console.print(f"Scale study: {found.scale_study.summary}", soft_wrap=True)
    table = Table(title=f"Optimizer report: {found.metric} ({found.mode}, {found.epoch} epoch)")
    best = f"best ({found.epoch} epoch)"
    for column in ("optimizer", best, "at lr", "lr basin", "decades", "diverged at lr"):
        table.add_column(column)
    for family in found:
        basin = (
            f"{fmt(family.basin_low)}..{fmt(family.basin_high)}"
            if family.basin_low is not None
            else "-"
        )
        table.add_row(
            family.optimizer,
            fmt(family.best_objective),
            fmt(family.best_lr),
            basin,
            fmt(family.basin_decades),
            fmt(family.lowest_diverged_lr),
        )
    console.print(table)
    for family in found:
        console.print(f"- {family.summary}", soft_wrap=True)


WaitOption = Annotated[
    bool, typer.Option("--wait", help="Show progress until done, then the leaderboard.")
]


@app.command()
def extend(
    sweep_id: Annotated[int, typer.Argument(help="The sweep to extend.")],
    trials: Annotated[
        int, typer.Option("--trials", min=1, help="How many more configurations to train.")
    ],
    wait: WaitOption = False,
    url: UrlOption = DEFAULT_URL,
) -> None:
    """Give a running or finished sweep more trials: a random search draws on from its seed,
    an adaptive one asks its searcher (which has seen every trial so far) for more."""
    with connect(url) as client:
        sweep = client.sweep(sweep_id)
        info = sweep.extend(trials)
        console.print(f"sweep {info.id} {info.status}: {info.num_trials} trials in all")
        if wait:
            _follow(sweep)


@app.command()
def rerun(
    sweep_id: Annotated[int, typer.Argument(help="The finished sweep whose trials go again.")],
    failed: Annotated[bool, typer.Option("--failed", help="Its failed trials.")] = False,
    stopped: Annotated[bool, typer.Option("--stopped", help="Its early-stopped trials.")] = False,
    wait: WaitOption = False,
    url: UrlOption = DEFAULT_URL,
) -> None:
    """Train a finished sweep's failed (--failed) and or early-stopped (--stopped) trials
    again, each from its last checkpoint."""
    if not (failed or stopped):
        raise fail("rerun: say which trials: --failed, --stopped or both")
    with connect(url) as client:
        sweep = client.sweep(sweep_id)
        count = sweep.rerun(failed=failed, stopped=stopped)
        console.print(f"sweep {sweep_id}: {count} trials go again")
        if wait and count:
            _follow(sweep)


def _follow(sweep: Sweep) -> None:
    """Progress until the sweep ends, then its leaderboard and verdict."""
    try:
        sweep.wait(progress=True, console=console)
    except KeyboardInterrupt:
        console.print(f"stopped watching; sweep {sweep.id} goes on (optisweep status)")
        raise typer.Exit(130) from None
    _finish(sweep)


@app.command()
def cancel(
    sweep_id: Annotated[int, typer.Argument(help="The sweep to cancel.")],
    url: UrlOption = DEFAULT_URL,
) -> None:
    """Cancel a pending or running sweep; its running trials stop after their current epoch."""
    with connect(url) as client:
        info = client.sweep(sweep_id).cancel()
    console.print(f"sweep {info.id} {info.status}")
