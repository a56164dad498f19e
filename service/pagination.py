"""Keyset (cursor) pagination: an opaque cursor holds the last row's sort key and id."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from sqlalchemy import ColumnElement, and_, or_
from sqlalchemy.orm import QueryableAttribute

from service.errors import InputError


class CursorError(InputError):
    """A cursor that this API did not issue."""

    def __init__(self, message: str) -> None:
        super().__init__(message, loc=("query", "cursor"))


def encode_cursor(*key: Any) -> str:
    """An opaque, URL-safe cursor for a sort key."""
    raw = json.dumps(list(key), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, *, length: int) -> list[Any]:
    """The sort key inside a cursor; CursorError if it was not made by encode_cursor."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = json.loads(raw)
    except (binascii.Error, ValueError):
        raise CursorError(f"cursor: not a cursor this API issued: {cursor!r}") from None
    if not isinstance(key, list) or len(key) != length:
        raise CursorError(f"cursor: not a cursor this API issued: {cursor!r}")
    return key


def after_nullable(
    column: ColumnElement[Any] | QueryableAttribute[Any],
    tiebreak: ColumnElement[int] | QueryableAttribute[int],
    *,
    value: float | None,
    last_id: int,
    descending: bool,
) -> ColumnElement[bool]:
    """Rows after (value, last_id) in the order: non-NULL values (asc or desc), then NULLs; id."""
    if value is None:
        return and_(column.is_(None), tiebreak > last_id)
    beyond = column < value if descending else column > value
    return or_(column.is_(None), beyond, and_(column == value, tiebreak > last_id))
