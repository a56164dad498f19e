"""What makes the server safe to expose: security headers on every response, trusted Host
headers (against DNS rebinding) and CORS only where configured."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
"""Scripts only from this server's own files (no inline script, no eval), nothing framed."""

HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}

OWN_POLICY_PATHS = ("/docs",)
"""Pages served with their own inline scripts (FastAPI's Swagger UI): no CSP from us."""


class SecurityHeaders:
    """ASGI middleware: the headers above, and the CSP on every path but ``/docs``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Add the headers to the response's start."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with_csp = not scope["path"].startswith(OWN_POLICY_PATHS)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers.setdefault(name, value)
                if with_csp:
                    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def allowed_hosts(host: str, configured: list[str]) -> list[str]:
    """The Host headers the server answers: the configured ones, else its own loopback names
    (and the address it listens on, when that is a specific one)."""
    if configured:
        return configured
    names = ["127.0.0.1", "localhost", "[::1]", "::1"]
    if host not in ("0.0.0.0", "::", "") and host not in names:
        names.append(host)
    return names
