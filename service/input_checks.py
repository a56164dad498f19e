"""What every input must be before it is validated or stored, and how errors repeat it safely.

Request bodies, query strings and spec files are plain JSON values: finite numbers, strings
without NUL or unpaired surrogates (PostgreSQL refuses the one, UTF-8 the other), objects with
string keys, nested at most MAX_DEPTH deep. Error responses repeat at most a short prefix of
an input, so a large or strange input cannot make its own error large or unencodable.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from optisweep.service.errors import InputError

ECHO_CHARS = 100
"""The most characters of an input an error repeats, as optimizers.schemas.ECHO_CHARS (not
imported from there: the CLI reads spec files through this module without loading torch)."""
MAX_DEPTH = 32
"""How deeply arrays and objects may nest (a sweep spec needs 8)."""

Loc = tuple[str | int, ...]

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_NON_FINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}


def safe_text(text: str) -> str:
    """``text`` cut to ECHO_CHARS characters (then "..."), unpaired surrogates escaped."""
    if len(text) > ECHO_CHARS:
        text = text[:ECHO_CHARS] + "..."
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def check_text(text: str, *, loc: Loc) -> None:
    """InputError if a string holds NUL or an unpaired surrogate, which no database stores."""
    if _UNSTORABLE.search(text):
        raise InputError(
            "must not contain NUL characters or unpaired surrogates",
            loc=loc,
            error_type="string_unicode",
        )


def check_json_value(value: Any, *, loc: Loc) -> None:
    """InputError naming the first place where ``value`` is not plain, storable JSON."""
    _check(value, loc, 0)


def _check(value: Any, loc: Loc, depth: int) -> None:
    if isinstance(value, str):
        check_text(value, loc=loc)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InputError(
                f"must be a finite number, got {_NON_FINITE.get(value, 'NaN')}",
                loc=loc,
                error_type="finite_number",
            )
    elif isinstance(value, dict | list):
        if depth >= MAX_DEPTH:
            raise InputError(
                f"nested more than {MAX_DEPTH} levels deep", loc=loc, error_type="json_invalid"
            )
        if isinstance(value, list):
            for index, item in enumerate(value):
                _check(item, (*loc, index), depth + 1)
            return
        for key, item in value.items():
            if not isinstance(key, str):
                raise InputError(
                    f"keys must be strings, got {type(key).__name__} {short_json(key)}", loc=loc
                )
            check_text(key, loc=(*loc, key))
            _check(item, (*loc, key), depth + 1)
    elif not (value is None or isinstance(value, bool | int)):
        raise InputError(f"must be JSON data, got {type(value).__name__}", loc=loc)


def parse_json(raw: bytes, *, loc: Loc) -> Any:
    """``raw`` parsed as JSON and checked by check_json_value; InputError (json_invalid) if
    it is not JSON, e.g. not UTF-8, a number of thousands of digits or nested too deeply."""
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"JSON decode error: {exc.msg}", loc=(*loc, exc.pos), error_type="json_invalid"
        ) from None
    except RecursionError:
        raise InputError(
            f"nested more than {MAX_DEPTH} levels deep", loc=loc, error_type="json_invalid"
        ) from None
    except ValueError as exc:  # not UTF-8, or an integer of more than 4300 digits
        raise InputError(
            f"JSON decode error: {safe_text(str(exc))}", loc=loc, error_type="json_invalid"
        ) from None
    check_json_value(value, loc=loc)
    return value


def _json_text(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=repr)
    except (ValueError, RecursionError):  # an integer too long to print, or a cycle
        return f"<{type(value).__name__}>"


def short_json(value: Any) -> str:
    """``value`` as compact JSON text, cut to ECHO_CHARS characters (then "...")."""
    return safe_text(_json_text(value))


def echo(value: Any) -> Any:
    """A short stand-in for an input, which a JSON response can always encode."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if abs(value) < 2**63 else short_json(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else _NON_FINITE.get(value, "NaN")
    if not isinstance(value, dict | list):  # a string, bytes, an exception in ctx
        return safe_text(str(value))
    text = _json_text(value)
    if len(text) > ECHO_CHARS:
        return safe_text(text)
    # Short enough to repeat as itself: NaN as "NaN", an unpaired surrogate as "?".
    return json.loads(text.encode("utf-8", "replace").decode("utf-8"), parse_constant=str)
