"""How the API takes input (a body size limit, StrictRoute) and the errors it documents."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response, status
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from optisweep.service.input_checks import check_text, parse_json


class BodyTooLarge(HTTPException):
    """A request body over the limit (a 413 through FastAPI's HTTPException handling)."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"the request body is larger than the limit of {max_bytes} bytes",
        )


class BodyLimit:
    """ASGI middleware: a body over ``max_bytes`` is a 413 before the app reads any of it when
    Content-Length says so, else as soon as the bytes read pass the limit (chunked bodies)."""

    def __init__(
        self, app: ASGIApp, *, max_bytes: int, per_path: dict[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.per_path = per_path or {}
        """Paths with a limit of their own (code uploads)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on with a receive that counts, or answer 413 at once."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.per_path.get(scope["path"], self.max_bytes)
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            too_large = BodyTooLarge(limit)
            response = JSONResponse({"detail": too_large.detail}, too_large.status_code)
            await response(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge(limit)
            return message

        await self.app(scope, counting_receive, send)


class StrictRoute(APIRoute):
    """A route that checks its query string and JSON body before FastAPI parses them: NUL,
    unpaired surrogates, NaN and Infinity, or deep nesting are a 422 naming the field."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """FastAPI's handler for this route, behind the checks."""
        handle = super().get_route_handler()
        reads_body = self.body_field is not None

        async def checked(request: Request) -> Response:
            for name, value in request.query_params.multi_items():
                check_text(value, loc=("query", name))
            if reads_body and _is_json(request.headers.get("content-type")):
                body = await request.body()  # BodyLimit stops reading past the limit
                if body:
                    parse_json(body, loc=("body",))
            return await handle(request)

        return checked


def _is_json(content_type: str | None) -> bool:
    """Whether FastAPI parses a body of this content type as JSON."""
    if content_type is None:
        return False
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


class ErrorMessage(BaseModel):
    """An error that is not about one field."""

    detail: str


NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorMessage, "description": "No such sweep or trial."}
}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorMessage, "description": "The sweep's state does not allow it."}
}
TOO_LARGE: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorMessage, "description": "The body is larger than max_request_bytes."}
}
FORBIDDEN: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorMessage, "description": "The action needs a role the user lacks."}
}
UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorMessage, "description": "No valid API token (or dashboard session)."}
}
RATE_LIMITED: dict[int | str, dict[str, Any]] = {
    429: {"model": ErrorMessage, "description": "Too many requests; see Retry-After."}
}
SIGNED_IN: dict[int | str, dict[str, Any]] = {
    **UNAUTHORIZED,
    **FORBIDDEN,
    **RATE_LIMITED,
    404: {"model": ErrorMessage, "description": "No such resource in your projects."},
}
"""What any signed-in route may answer besides its own responses (a project, sweep, trial or
package the user may not see is a 404, as if it did not exist)."""
