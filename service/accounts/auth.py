"""Authentication: who a request comes from (a bearer token, or the dashboard's session cookie
with a CSRF token on every state-changing request), and how often they may ask.

``authenticated`` is a dependency of every API route but the health checks and signing in:
no or a bad token is a 401 with ``WWW-Authenticate: Bearer``.
"""

from __future__ import annotations

import hmac
import math
import time
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from sqlalchemy.orm import Session

from optisweep.service.accounts import repository
from optisweep.service.accounts.access import Principal
from optisweep.service.accounts.models import ApiToken, User
from optisweep.service.deps import SessionDep
from optisweep.service.errors import ForbiddenError, RateLimitedError, UnauthorizedError

CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

bearer = HTTPBearer(auto_error=False, description="An API token (optisweep token create).")


class RateLimits:
    """Requests per token (signed in) and per client address (not signed in), in a moving
    window (the ``limits`` library, in this process's memory)."""

    def __init__(self, per_token: str, per_address: str) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._items: dict[str, RateLimitItem] = {
            "token": parse(per_token),
            "address": parse(per_address),
        }

    def hit(self, kind: str, key: str) -> None:
        """Count one request; RateLimitedError (with the seconds to wait) past the limit."""
        item = self._items[kind]
        if self._limiter.hit(item, kind, key):
            return
        reset = self._limiter.get_window_stats(item, kind, key).reset_time
        wait = max(1, math.ceil(reset - time.time()))
        raise RateLimitedError(
            f"too many requests: at most {item} per {kind}; retry in {wait} s", retry_after=wait
        )


def client_address(request: Request) -> str:
    """The client's address as the server sees it (a reverse proxy's, behind one)."""
    return request.client.host if request.client is not None else "unknown"


def audit(
    session: Session,
    request: Request,
    principal: Principal,
    action: str,
    target: str,
    *,
    project_id: int | None = None,
) -> None:
    """Record that the principal did ``action`` to ``target``, from the request's address (in
    the request's transaction, so the record and the change commit together)."""
    repository.record(
        session,
        user_id=principal.user_id,
        user_name=principal.name,
        project_id=project_id,
        action=action,
        target=target,
        address=client_address(request),
    )


def limit_address(request: Request) -> None:
    """Count a request that is not signed in against its address's limit."""
    limits: RateLimits = request.app.state.rate_limits
    limits.hit("address", client_address(request))


def principal_of(session: Session, token: ApiToken) -> Principal | None:
    """The principal a usable token stands for, or None (revoked, expired, user gone)."""
    if not repository.usable(token):
        return None
    user = session.get(User, token.user_id)
    if user is None:
        return None
    repository.touch(token)
    return Principal(user.id, user.name, user.is_admin, token.id, "bearer")


def _from_session(request: Request, session: Session) -> Principal | None:
    """The dashboard's signed-in user, from its session cookie (None if there is none)."""
    token_id = request.session.get("token_id")
    if not isinstance(token_id, int):
        return None
    token = session.get(ApiToken, token_id)
    principal = principal_of(session, token) if token is not None else None
    if principal is None:
        request.session.clear()
        return None
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        expected = str(request.session.get("csrf", ""))
        if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
            raise ForbiddenError(
                f"a signed-in dashboard request that changes something needs "
                f"the {CSRF_HEADER} header of its session"
            )
    return Principal(principal.user_id, principal.name, principal.is_admin, token_id, "session")


def authenticated(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The request's principal; 401 without valid credentials, 429 past the rate limit."""
    principal: Principal | None = None
    if credentials is not None:
        token = repository.token_by_secret(session, credentials.credentials)
        principal = principal_of(session, token) if token is not None else None
    elif "session" in request.scope:
        principal = _from_session(request, session)
    if principal is None:
        limit_address(request)
        raise UnauthorizedError(
            "sign in: send an API token as 'Authorization: Bearer <token>' "
            "(optisweep login; the first start writes one to ~/.config/optisweep/token)"
        )
    limits: RateLimits = request.app.state.rate_limits
    limits.hit("token", str(principal.token_id))
    request.state.principal = principal
    return principal


def admin(principal: Annotated[Principal, Depends(authenticated)]) -> Principal:
    """The principal if they are an admin (403 otherwise)."""
    if not principal.is_admin:
        raise ForbiddenError("this needs a server admin")
    return principal


PrincipalDep = Annotated[Principal, Depends(authenticated)]
AdminDep = Annotated[Principal, Depends(admin)]
