"""Domain errors; only the HTTP layer turns them into status codes, the CLI into exit codes."""

from __future__ import annotations


class NotFoundError(LookupError):
    """An id that names no row."""


class UnauthorizedError(PermissionError):
    """No valid credentials: no token, or one that is unknown, expired or revoked (401)."""


class ForbiddenError(PermissionError):
    """Valid credentials without the role the action needs (403)."""


class RateLimitedError(RuntimeError):
    """Too many requests from one token or address; ``retry_after`` seconds until the next."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ConflictError(RuntimeError):
    """A request that the resource's current state does not allow (e.g. cancel a finished sweep)."""


class InputError(ValueError):
    """Bad input; ``loc`` locates it as FastAPI does (body/query, field, list index), and
    ``error_type`` is the kind of error a 422 names (``value_error`` unless more specific)."""

    def __init__(
        self, message: str, *, loc: tuple[str | int, ...], error_type: str = "value_error"
    ) -> None:
        super().__init__(message)
        self.loc = loc
        self.error_type = error_type


class SpecError(InputError):
    """A sweep spec that passed its schema but not the checks that need the registries.

    ``field`` is the dotted path of the offending field in the spec, e.g. ``workload.hidden``.
    """

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message, loc=("body", *field.split(".")))
        self.field = field
