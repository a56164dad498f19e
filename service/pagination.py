"""Keyset (cursor) pagination: an opaque cursor holds the last row's sort key and id."""

from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Any, Literal

from optisweep.optimizers.schemas import short_repr
from optisweep.service.db.base import MAX_ID
from optisweep.service.errors import InputError


class CursorError(InputError):
    """A cursor that this API did not issue."""

    def __init__(self, message: str) -> None:
        super().__init__(message, loc=("query", "cursor"))


def encode_cursor(*key: Any) -> str:
    """An opaque, URL-safe cursor for a sort key."""
    raw = json.dumps(list(key), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


KeyKind = Literal["id", "int", "number_or_null"]
"""What one element of a sort key is: a row id, an integer column's value (both 32-bit), or
a float column's value (finite, or null for rows without one)."""


def decode_cursor(cursor: str, *, kinds: tuple[KeyKind, ...]) -> list[Any]:
    """The sort key inside a cursor, one element per kind; CursorError if it does not hold
    exactly such elements (then encode_cursor did not make it)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = json.loads(raw)
    except (binascii.Error, ValueError, RecursionError):
        key = None
    if not isinstance(key, list) or len(key) != len(kinds):
        raise CursorError(f"cursor: not a cursor this API issued: {short_repr(cursor)}")
    return [_key_element(element, kind, cursor) for element, kind in zip(key, kinds, strict=True)]


def _key_element(element: Any, kind: KeyKind, cursor: str) -> Any:
    is_int = isinstance(element, int) and not isinstance(element, bool)
    if kind == "id" and is_int and 1 <= element <= MAX_ID:
        return element
    if kind == "int" and is_int and -MAX_ID - 1 <= element <= MAX_ID:
        return element
    if kind == "number_or_null":
        if element is None:
            return None
        if (is_int and abs(element) <= MAX_ID) or (
            isinstance(element, float) and math.isfinite(element)
        ):
            return float(element)
    raise CursorError(f"cursor: not a cursor this API issued: {short_repr(cursor)}")
