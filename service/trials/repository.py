"""Queries and writes for trials and their metrics; repositories flush, callers commit."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from service.db.base import FloatKind, encode_float
from service.trials.models import Metric


def record_metrics(
    session: Session, *, trial_id: int, rows: Iterable[tuple[int, Mapping[str, float]]]
) -> int:
    """Insert (epoch, {name: value}) rows; a row already stored is left as is (idempotent)."""
    values = []
    for step, metrics in rows:
        for name, value in metrics.items():
            finite, kind = encode_float(float(value))
            values.append(
                {
                    "trial_id": trial_id,
                    "name": name,
                    "step": step,
                    "value_finite": finite,
                    "value_kind": kind or FloatKind.FINITE,
                }
            )
    if not values:
        return 0
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(Metric).values(values)
    statement = statement.on_conflict_do_nothing(index_elements=["trial_id", "name", "step"])
    session.execute(statement)
    session.flush()
    return len(values)


def list_metrics(session: Session, *, trial_id: int) -> list[Metric]:
    """Every metric of a trial, by step then name."""
    statement = select(Metric).where(Metric.trial_id == trial_id).order_by(Metric.step, Metric.name)
    return list(session.scalars(statement))
