"""`make chaos`: randomized fault runs against real servers on SQLite and PostgreSQL, a table.

Run: ``python -m tests.chaos [--runs 20] [--database sqlite --database postgresql]
[--case NAME ...] [--seed N]``; exits 1 if any run lost or duplicated an epoch or a healthy
sweep did not complete.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.chaos.harness import CASES, CASES_BY_NAME, Outcome, run_case, serving
from tests.service.conftest import fresh_postgres_database


@contextmanager
def _database(kind: str, folder: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'chaos.db'}"
    else:
        with fresh_postgres_database() as url:
            yield url


def _row(outcome: Outcome) -> str:
    expected = sum(a.expected for a in outcome.audits)
    found = sum(a.found for a in outcome.audits)
    lost = sum(a.lost for a in outcome.audits)
    duplicated = sum(a.duplicated for a in outcome.audits)
    trials = sum(a.trials for a in outcome.audits)
    ends = ", ".join(f"{a.status}" + (f" ({a.error})" if a.error else "") for a in outcome.audits)
    return (
        f"| {outcome.database} | {outcome.case} | {outcome.faults} | {trials} | {expected} "
        f"| {found} | {lost} | {duplicated} | {'yes' if outcome.healthy_completed else 'NO'} "
        f"| {outcome.seconds:.0f} | {ends[:160]} |"
    )


HEADER = (
    "| database | case | faults | trials | epochs expected | found | lost | duplicated "
    "| healthy completed | s | sweeps ended |\n| --- | --- | ---: | ---: | ---: | ---: | ---: "
    "| ---: | --- | ---: | --- |"
)


SUMMARY_HEADER = (
    "\n| database | runs | faults | epochs expected | lost | duplicated | healthy completed |\n"
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
)


def main() -> None:
    """Run, print each run as it ends, then a summary per database and case."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="runs per database")
    parser.add_argument("--database", action="append", choices=["sqlite", "postgresql"])
    parser.add_argument("--case", action="append", choices=sorted(CASES_BY_NAME))
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    outcomes: list[Outcome] = []
    print(HEADER, flush=True)
    for database in args.database or ["sqlite", "postgresql"]:
        cases = [
            c for c in CASES if database in c.databases and (not args.case or c.name in args.case)
        ]
        plan = [cases[i % len(cases)] for i in range(args.runs)]
        rng.shuffle(plan)
        for case in plan:
            with (  # every run on a fresh database and server
                tempfile.TemporaryDirectory(prefix="optisweep-chaos-") as tmp,
                _database(database, Path(tmp)) as url,
                serving(url, Path(tmp), seed=rng.randrange(2**31)) as run,
            ):
                outcome = run_case(case, run, database=database)
            outcomes.append(outcome)
            print(_row(outcome), flush=True)
    print(
        "\n| database | runs | faults | epochs expected | lost | duplicated | healthy completed |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    by_database: dict[str, list[Outcome]] = defaultdict(list)
    for outcome in outcomes:
        by_database[outcome.database].append(outcome)
    for database, runs in by_database.items():
        audits = [a for o in runs for a in o.audits]
        print(
            f"| {database} | {len(runs)} | {sum(o.faults for o in runs)} "
            f"| {sum(a.expected for a in audits)} | {sum(a.lost for a in audits)} "
            f"| {sum(a.duplicated for a in audits)} "
            f"| {sum(o.healthy_completed for o in runs)}/{len(runs)} |"
        )
    sys.exit(0 if all(o.ok for o in outcomes) else 1)


if __name__ == "__main__":
    main()
