"""What can go wrong talking to a server, as exceptions a program can catch by kind."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

_TAGS = {"float", "int", "choice", "fixed"}
"""Discriminator tags pydantic puts in error locations; users never wrote them."""
_WHERE = {"body", "query", "path", "header"}
"""The first part of FastAPI's error locations: which part of the request held the field."""


@dataclass(frozen=True)
class FieldError:
    """One field the server (or the spec file) refused: where, and why."""

    field: str
    """Its dotted path in the request, e.g. ``space.lr.low`` ("" for the whole body)."""
    message: str
    value: Any = None
    """The value refused, when the server said it."""

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class OptisweepError(Exception):
    """Anything the client could not do; ``str(error)`` is one line a person can act on."""

    exit_code = 1
    """What the CLI exits with: 2 for input the user can fix, 1 for the server or network."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class ServerUnreachableError(OptisweepError):
    """No optisweep server answers at the URL."""


class NotSignedInError(OptisweepError):
    """401: no token, or one that is unknown, expired or revoked."""

    exit_code = 2


class ForbiddenError(OptisweepError):
    """403: signed in, but the role does not allow it."""

    exit_code = 2


class NotFoundError(OptisweepError):
    """404: no such sweep, trial or project (or one of a project you are not in)."""

    exit_code = 2


class ConflictError(OptisweepError):
    """409: the thing is not in a state that allows it (cancelling a finished sweep)."""

    exit_code = 2


class TooLargeError(OptisweepError):
    """413: a body or code package over the server's limit."""

    exit_code = 2


class RateLimitedError(OptisweepError):
    """429: too many requests; try again after a while."""


class ServerError(OptisweepError):
    """5xx, or an answer the client cannot read."""


class InvalidInputError(OptisweepError):
    """422, or a spec file the client cannot read: ``errors`` names every field refused."""

    exit_code = 2

    def __init__(
        self, errors: list[FieldError], *, status_code: int | None = 422, prefix: str = ""
    ) -> None:
        super().__init__(
            prefix + "; ".join(str(error) for error in errors), status_code=status_code
        )
        self.errors = errors

    @property
    def field(self) -> str:
        """The first field refused (its dotted path)."""
        return self.errors[0].field if self.errors else ""


def field_errors(details: list[dict[str, Any]]) -> list[FieldError]:
    """FastAPI's 422 detail (or pydantic's ``errors()``) as FieldErrors, without the
    location parts users never wrote (``body`` or ``query``, discriminator tags) nor a message
    that starts by naming its field again."""
    found = []
    for detail in details:
        loc = [str(part) for part in detail.get("loc", []) if part not in _TAGS]
        if loc and loc[0] in _WHERE:
            loc = loc[1:]
        field = ".".join(loc)
        message = str(detail.get("msg", "")).removeprefix("Value error, ")
        found.append(FieldError(field, message.removeprefix(f"{field}: "), detail.get("input")))
    return found


_BY_STATUS: dict[int, type[OptisweepError]] = {
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    413: TooLargeError,
    429: RateLimitedError,
}

NOT_SIGNED_IN = (
    "not signed in: run `optisweep login` with a token (an admin makes one with "
    "`optisweep user create`), or set OPTISWEEP_TOKEN"
)


TOKEN_REFUSED = (
    "token refused: the server does not know this token, or it was revoked or has expired; "
    "run `optisweep login` with a current one (an admin makes one with `optisweep user create`)"
)


def error_for(response: httpx.Response) -> OptisweepError:
    """The exception an error response stands for."""
    detail = _detail(response)
    if response.status_code == 422 and isinstance(detail, list):
        return InvalidInputError(field_errors(detail))
    if response.status_code == 401:
        sent = response.request.headers.get("Authorization", "").startswith("Bearer ")
        return NotSignedInError(TOKEN_REFUSED if sent else NOT_SIGNED_IN, status_code=401)
    kind = _BY_STATUS.get(response.status_code)
    if kind is not None and isinstance(detail, str):
        return kind(detail, status_code=response.status_code)
    return ServerError(
        f"server answered {response.status_code}: {response.text[:200]}",
        status_code=response.status_code,
    )


def _detail(response: httpx.Response) -> Any:
    try:
        return response.json().get("detail")
    except (ValueError, AttributeError):
        return None
