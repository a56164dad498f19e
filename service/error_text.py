"""Validation errors as a person reads them, the same in the API's 422s, the dashboard and the
CLI: the field path as it was written (without pydantic's union tags), the bad value echoed in
every message, and "did you mean" for a key that is one typo from a field of the spec."""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel

from optisweep.service.input_checks import echo

TAGS = frozenset({"float", "int", "choice", "fixed", "auto"})
"""The discriminator tags of the spec's unions (``service/sweeps/params.py``), which pydantic
puts in error locations; nobody writes them."""
_ECHO = "got "
"""How a message that already repeats its input says so (ours: "must be > 0, got -1")."""


def _models(annotation: Any) -> Iterable[type[BaseModel]]:
    """The pydantic models an annotation may hold: itself, or inside Optional, a union, a
    list, a dict's values or Annotated."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        yield from _models(args[0])
    elif origin in (typing.Union, types.UnionType, list, tuple, set):
        for arg in args:
            yield from _models(arg)
    elif origin is dict and len(args) == 2:
        yield from _models(args[1])


def fields_at(model: type[BaseModel], loc: Sequence[str | int]) -> set[str]:
    """The field names a key at ``loc`` (the location of the key itself) could have been:
    those of the models found by walking ``model`` along the location's parents."""
    current: list[type[BaseModel]] = [model]
    for part in loc[:-1]:
        if isinstance(part, int) or part in TAGS:
            continue  # an item of a list, or a union's tag: the same models
        found = [
            inner
            for m in current
            if part in m.model_fields
            for inner in _models(m.model_fields[part].annotation)
        ]
        if found:
            current = found
        # else a dict key (a family in overrides): its values' models are already current
    return {name for m in current for name in m.model_fields}


def explained(
    errors: Sequence[dict[str, Any]], model: type[BaseModel] | None
) -> list[dict[str, Any]]:
    """``errors`` (pydantic's or FastAPI's) with tags out of their locations, the input echoed
    in each message, and an unknown key's nearest field named (against ``model``)."""
    out = []
    for error in errors:
        loc = [part for part in error.get("loc", ()) if part not in TAGS]
        message = str(error.get("msg", ""))
        if error.get("type") == "extra_forbidden" and model is not None and loc:
            where = [part for part in loc if part not in ("body", "query")]
            fields = sorted(fields_at(model, where))
            near = difflib.get_close_matches(str(where[-1]), fields, 1)
            hint = f"; did you mean {near[0]!r}?" if near else f" (valid: {', '.join(fields)})"
            message = f"unknown field {where[-1]!r}{hint}"
        elif "input" in error and _ECHO not in message and error.get("type") != "missing":
            message = f"{message}, got {echo(error['input'])!r}"
        out.append({**error, "loc": loc, "msg": message})
    return out
