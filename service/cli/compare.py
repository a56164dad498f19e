"""`optisweep compare`: several sweeps side by side, time to target and performance profiles."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from optisweep.service.cli.common import (
    DEFAULT_URL,
    JsonOption,
    UrlOption,
    app,
    connect,
    console,
    fmt,
    print_json,
)
from optisweep.service.client import Comparison

PROFILE_TAUS = (1.0, 1.5, 2.0, 4.0)
"""The taus the profile table shows (the dashboard draws them all)."""


@app.command()
def compare(
    sweep_ids: Annotated[list[int], typer.Argument(help="The sweeps to compare.")],
    target: Annotated[
        list[str] | None,
        typer.Option(
            help="METRIC>=VALUE, METRIC<=VALUE, or METRIC=VALUE on a sweep's objective "
            "(repeatable); default: --fraction of the way to the best reached."
        ),
    ] = None,
    fraction: Annotated[
        float, typer.Option(min=0.01, max=1.0, help="Without --target: how far to the best.")
    ] = 0.95,
    tolerance: Annotated[
        float, typer.Option(min=0.0001, max=0.9999, help="Of a family's best, for tuning cost.")
    ] = 0.02,
    measure: Annotated[str, typer.Option(help="auto, seconds or epochs.")] = "auto",
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """Compare sweeps over different workloads: per family its best, epochs and seconds to a
    target, the trials tuning took, and its performance profile across the sweeps."""
    with connect(url) as client:
        found = client.compare(
            sweep_ids, target=target, fraction=fraction, tolerance=tolerance, measure=measure
        )
    if as_json:
        print_json(found.model_dump(mode="json"))
        return
    for table in sweep_tables(found):
        console.print(table)
    console.print(profile_table(found))
    for note in found.notes:
        console.print(f"- {note}", soft_wrap=True)


def sweep_tables(found: Comparison) -> list[Table]:
    """One table per sweep: its families, fastest to the target first."""
    tables = []
    for sweep in found.sweeps:
        direction = ">=" if sweep.mode == "max" else "<="
        table = Table(
            title=f"sweep {sweep.sweep_id} {sweep.name} ({sweep.workload}): "
            f"{sweep.metric} {direction} {fmt(sweep.target)}",
            caption=sweep.target_rule,
        )
        best = f"best ({sweep.epoch} epoch)"
        for column in ("optimizer", best, "reached", "epochs", "seconds", "x fastest", "tuning"):
            table.add_column(column, justify="left" if column == "optimizer" else "right")
        for row in (r for r in found.results if r.sweep_id == sweep.sweep_id):
            table.add_row(
                row.optimizer,
                fmt(row.best_objective),
                f"{row.reached}/{row.trials}",
                fmt(row.epochs_to_target),
                fmt(row.seconds_to_target),
                fmt(row.ratio),
                fmt(row.tuning_trials),
            )
        tables.append(table)
    return tables


def profile_table(found: Comparison) -> Table:
    """Each family's profile area and its share of sweeps within tau of the fastest."""
    table = Table(
        title=f"Performance profiles (by {found.measure} to target)",
        caption="share of sweeps on which a family reached the target within tau x the "
        "fastest family's time; area over tau 1..4, normalised",
    )
    table.add_column("optimizer")
    table.add_column("area", justify="right")
    for tau in PROFILE_TAUS:
        table.add_column(f"tau={tau:g}", justify="right")
    index = {round(tau, 2): i for i, tau in enumerate(found.taus)}
    for family in found.profiles:
        shares = [family.shares[index[tau]] for tau in PROFILE_TAUS]
        table.add_row(family.optimizer, f"{family.area:.3f}", *(f"{s:.2f}" for s in shares))
    return table
