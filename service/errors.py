"""Domain errors; only the HTTP layer turns them into status codes, the CLI into exit codes."""

from __future__ import annotations


class NotFoundError(LookupError):
    """An id that names no row."""


class ConflictError(RuntimeError):
    """A request that the resource's current state does not allow (e.g. cancel a finished sweep)."""


class InputError(ValueError):
    """Bad input that passed its schema; ``loc`` locates it as FastAPI does (body/query, field)."""

    def __init__(self, message: str, *, loc: tuple[str, ...]) -> None:
        super().__init__(message)
        self.loc = loc


class SpecError(InputError):
    """A sweep spec that passed its schema but not the checks that need the registries.

    ``field`` is the dotted path of the offending field in the spec, e.g. ``workload.hidden``.
    """

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message, loc=("body", *field.split(".")))
        self.field = field
