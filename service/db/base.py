"""The declarative base, with a naming convention so constraint names are deterministic."""

from __future__ import annotations

import enum
import math
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import DateTime, Dialect, MetaData
from sqlalchemy.orm import DeclarativeBase, Session
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Base class of every ORM model."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp on every backend: SQLite drops the zone, so reads add UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Store aware datetimes in UTC."""
        if value is not None and value.tzinfo is not None:
            return value.astimezone(UTC)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """Read naive values (SQLite) back as UTC."""
        if isinstance(value, datetime) and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


MAX_ID = 2**31 - 1
"""The largest id an INTEGER primary key holds on every backend (PostgreSQL's is 32-bit)."""
ROWS_AT_A_TIME = 50_000
"""Rows a read over a whole sweep (its report, a comparison) turns into Python objects at a
time (``Result.partitions``): a million trials' rows are never all held, and the database's
client-side cursor stays 2x faster than a server-side one."""


RowT = TypeVar("RowT", bound=Base)


def get_by_id(session: Session, model: type[RowT], row_id: int) -> RowT | None:
    """The ``model`` row with this id, or None; an id no key holds (< 1, > MAX_ID) names none."""
    if not 1 <= row_id <= MAX_ID:
        return None
    return session.get(model, row_id)


def utcnow() -> datetime:
    """The current time, timezone-aware (UTC)."""
    return datetime.now(UTC)


class FloatKind(enum.StrEnum):
    """How a float is stored: diverged runs produce NaN and inf, which SQL stores unevenly."""

    FINITE = "finite"
    NAN = "nan"
    INF_POS = "inf_pos"
    INF_NEG = "inf_neg"


def encode_float(value: float | None) -> tuple[float | None, FloatKind | None]:
    """(column value, kind) for a float that may be NaN or infinite; None stays None."""
    if value is None:
        return None, None
    if math.isnan(value):
        return None, FloatKind.NAN
    if math.isinf(value):
        return None, FloatKind.INF_POS if value > 0 else FloatKind.INF_NEG
    return float(value), FloatKind.FINITE


def decode_float(value: float | None, kind: FloatKind | None) -> float | None:
    """The float that encode_float stored."""
    match kind:
        case FloatKind.NAN:
            return math.nan
        case FloatKind.INF_POS:
            return math.inf
        case FloatKind.INF_NEG:
            return -math.inf
    return value
