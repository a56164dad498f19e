"""How many of each sweep's trials are in each status, read in a few rows at any sweep size.

The database counts: its triggers on ``trials`` (migration 0010) write a ``StatusDelta`` for
every trial inserted, every status change and every delete, whoever makes it. The controller
folds the deltas into ``StatusTally`` rows every tick (``fold``); a count is the tallies plus
the deltas not folded yet, so it is exact at every moment, in every transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Engine, Subquery, func, select, text, union_all
from sqlalchemy.orm import Session

from optisweep.service.trials.models import (
    RANKED,
    FamilyTally,
    StatusDelta,
    StatusTally,
    TrialState,
)

_FOLD = {
    # One statement: the deltas it deletes are the ones it adds (a concurrent fold waits for
    # their row locks, then finds them gone).
    "postgresql": """
        WITH folded AS (
            DELETE FROM status_deltas RETURNING sweep_id, optimizer, status, finite, delta
        )
        INSERT INTO status_tallies (sweep_id, optimizer, status, finite, count)
        SELECT sweep_id, optimizer, status, finite, sum(delta) FROM folded GROUP BY 1, 2, 3, 4
        ORDER BY 1, 2, 3, 4
        ON CONFLICT (sweep_id, optimizer, status, finite)
        DO UPDATE SET count = status_tallies.count + excluded.count
    """,
    # SQLite has one writer: nothing changes the deltas between the two statements.
    "sqlite": """
        INSERT INTO status_tallies (sweep_id, optimizer, status, finite, count)
        SELECT sweep_id, optimizer, status, finite, sum(delta) FROM status_deltas WHERE true
        GROUP BY 1, 2, 3, 4
        ON CONFLICT (sweep_id, optimizer, status, finite) DO UPDATE
        SET count = count + excluded.count;
        DELETE FROM status_deltas
    """,
}


def _tallied(sweep_ids: list[int]) -> Subquery:
    """Every tally and unfolded delta of these sweeps as (sweep_id, optimizer, status, finite,
    n) rows, to be summed."""
    columns = ("sweep_id", "optimizer", "status", "finite")
    return union_all(
        select(*(getattr(StatusTally, c) for c in columns), StatusTally.count.label("n")).where(
            StatusTally.sweep_id.in_(sweep_ids)
        ),
        select(*(getattr(StatusDelta, c) for c in columns), StatusDelta.delta.label("n")).where(
            StatusDelta.sweep_id.in_(sweep_ids)
        ),
    ).subquery()


def status_counts(session: Session, sweep_ids: Iterable[int]) -> dict[int, dict[TrialState, int]]:
    """How many trials of each sweep are in each status (statuses with none are absent)."""
    counts: dict[int, dict[TrialState, int]] = {sweep_id: {} for sweep_id in sweep_ids}
    if not counts:
        return counts
    rows = _tallied(list(counts))
    for sweep_id, status, count in session.execute(
        select(rows.c.sweep_id, rows.c.status, func.sum(rows.c.n)).group_by(
            rows.c.sweep_id, rows.c.status
        )
    ):
        if count:
            counts[sweep_id][TrialState(status)] = int(count)
    return counts


def ranked_counts(session: Session, sweep_id: int) -> dict[str, int]:
    """How many of the sweep's trials of each family rank on its leaderboard (completed or
    stopped, with a finite objective: ``ranking.ranked_trials``); families with none are
    absent."""
    rows = _tallied([sweep_id])
    found = session.execute(
        select(rows.c.optimizer, func.sum(rows.c.n))
        .where(rows.c.status.in_([s.value for s in RANKED]), rows.c.finite.is_(True))
        .group_by(rows.c.optimizer)
    )
    return {optimizer: int(count) for optimizer, count in found if count}


def fold(session: Session) -> None:
    """Add the deltas the triggers wrote to the tallies and delete them (the caller commits);
    with none, nothing is written (it runs every tick: an idle server takes no write lock)."""
    if session.scalar(select(StatusDelta.id).limit(1)) is None:
        return
    name = session.get_bind().dialect.name
    for statement in _FOLD[name].split(";"):
        session.execute(text(statement))


def sweep_versions(session: Session, sweep_ids: Iterable[int]) -> dict[int, tuple[Any, ...]]:
    """Per sweep, what changes whenever anything a report or comparison reads of it changes:
    its status counts and the epochs its trials have reported (a few rows at any size); the
    key of those reads' caches."""
    ids = list(sweep_ids)
    counts = status_counts(session, ids)
    spent: dict[int, int] = dict(
        session.execute(
            select(FamilyTally.sweep_id, func.sum(FamilyTally.epochs_spent))
            .where(FamilyTally.sweep_id.in_(ids))
            .group_by(FamilyTally.sweep_id)
        ).all()
    )
    return {
        sweep_id: (tuple(sorted(counts[sweep_id].items())), int(spent.get(sweep_id) or 0))
        for sweep_id in ids
    }


ANALYZED_TABLES = ("trials", "metrics")
"""The tables whose statistics the controller renews when PostgreSQL's autovacuum is off."""


def vacuum(engine: Engine) -> None:
    """PostgreSQL housekeeping that autovacuum would do (SQLite needs none): reclaim the
    deltas the folds deleted (the table's rows are deleted as fast as they are written, and
    a server with autovacuum off would leave every fold and count reading more dead rows than
    the last); and with autovacuum off, renew the statistics of ``ANALYZED_TABLES`` by
    autovacuum's own rule (more rows changed since the last ANALYZE than 50 + 10% of the
    table), or the planner takes a table of a million finished trials for the pending ones it
    saw when the sweep was submitted."""
    if engine.dialect.name != "postgresql":
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM status_deltas"))
        if connection.execute(text("SHOW autovacuum")).scalar() == "on":
            return
        stale = connection.execute(
            text(
                "SELECT s.relname FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid"
                " WHERE s.relname = ANY(:tables)"
                " AND s.n_mod_since_analyze > 50 + 0.1 * greatest(s.n_live_tup, c.reltuples)"
            ),
            {"tables": list(ANALYZED_TABLES)},
        ).scalars()
        for table in list(stale):
            connection.execute(text(f"ANALYZE {table}"))
