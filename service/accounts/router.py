"""/me, /users, /tokens and /session: who is signed in, users (admins), API tokens, and the
dashboard's sign-in."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Depends, Request, Response, status

from optisweep.service.accounts import repository
from optisweep.service.accounts.auth import AdminDep, PrincipalDep, audit, limit_address
from optisweep.service.accounts.models import ApiToken, User
from optisweep.service.accounts.schemas import (
    DEFAULT_TOKEN_DAYS,
    Me,
    ProjectRead,
    SessionCreate,
    SessionRead,
    TokenCreate,
    TokenCreated,
    TokenRead,
    UserCreate,
    UserCreated,
    UserRead,
)
from optisweep.service.db.base import utcnow
from optisweep.service.deps import SessionDep
from optisweep.service.errors import NotFoundError, UnauthorizedError
from optisweep.service.routing import CONFLICT, StrictRoute

router = APIRouter(tags=["accounts"], route_class=StrictRoute)
session_router = APIRouter(tags=["accounts"], route_class=StrictRoute)


@router.get("/me")
def me(principal: PrincipalDep, session: SessionDep) -> Me:
    """The signed-in user, their token, and the projects they are in (with their role)."""
    user = session.get(User, principal.user_id)
    token = session.get(ApiToken, principal.token_id)
    assert user is not None  # authenticated just now
    assert token is not None
    projects = [
        ProjectRead(id=p.id, name=p.name, created_at=p.created_at, role=role)
        for p, role in repository.list_projects(session, principal.user_id)
    ]
    return Me(
        user=UserRead.model_validate(user), token=TokenRead.model_validate(token), projects=projects
    )


@router.post("/users", status_code=status.HTTP_201_CREATED, responses=CONFLICT)
def create_user(
    body: UserCreate, request: Request, principal: AdminDep, session: SessionDep
) -> UserCreated:
    """A new user and their first token (shown once); admins only."""
    user = repository.create_user(session, body.name, is_admin=body.is_admin)
    row, token = repository.create_token(session, user, name="first", days=DEFAULT_TOKEN_DAYS)
    audit(
        session,
        request,
        principal,
        "user.create",
        f"user {user.name}" + (" (admin)" if user.is_admin else ""),
    )
    return UserCreated(
        user=UserRead.model_validate(user),
        token=TokenCreated(**TokenRead.model_validate(row).model_dump(), token=token),
    )


@router.get("/users")
def list_users(principal: AdminDep, session: SessionDep) -> list[UserRead]:
    """Every user; admins only."""
    return [UserRead.model_validate(user) for user in repository.list_users(session)]


@router.post("/tokens", status_code=status.HTTP_201_CREATED)
def create_token(
    body: TokenCreate, request: Request, principal: PrincipalDep, session: SessionDep
) -> TokenCreated:
    """A new token for the signed-in user, valid for ``days``: its secret is shown only now."""
    user = session.get(User, principal.user_id)
    assert user is not None
    row, token = repository.create_token(session, user, name=body.name, days=body.days)
    audit(
        session, request, principal, "token.create", f"token {row.id} ({row.name}, {row.prefix}...)"
    )
    return TokenCreated(**TokenRead.model_validate(row).model_dump(), token=token)


@router.get("/tokens")
def list_tokens(principal: PrincipalDep, session: SessionDep, all: bool = False) -> list[TokenRead]:
    """The signed-in user's tokens (an admin's ``all=true``: everyone's), newest first."""
    user_id = None if all and principal.is_admin else principal.user_id
    return [TokenRead.model_validate(t) for t in repository.list_tokens(session, user_id)]


@router.delete("/tokens/{token_id}")
def revoke_token(
    token_id: int, request: Request, principal: PrincipalDep, session: SessionDep
) -> TokenRead:
    """Revoke one of the signed-in user's tokens (an admin: anyone's); it signs in no more."""
    token = repository.get_token(session, token_id)
    if token.user_id != principal.user_id and not principal.is_admin:
        raise NotFoundError(f"token {token_id} not found")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        audit(
            session,
            request,
            principal,
            "token.revoke",
            f"token {token.id} ({token.name}, {token.prefix}...)",
        )
    session.flush()
    return TokenRead.model_validate(token)


@session_router.post("/session", dependencies=[Depends(limit_address)])
def sign_in(body: SessionCreate, request: Request, session: SessionDep) -> SessionRead:
    """Sign the dashboard in with an API token: an HttpOnly, SameSite=Strict session cookie,
    and the CSRF token its state-changing requests send as ``X-CSRF-Token``."""
    token = repository.token_by_secret(session, body.token)
    if token is None or not repository.usable(token):
        raise UnauthorizedError("that token is unknown, expired or revoked")
    user = session.get(User, token.user_id)
    assert user is not None
    request.session.clear()
    request.session.update({"token_id": token.id, "csrf": secrets.token_urlsafe(32)})
    return SessionRead(user=UserRead.model_validate(user), csrf_token=request.session["csrf"])


@router.get("/session")
def current_session(request: Request, principal: PrincipalDep, session: SessionDep) -> SessionRead:
    """The dashboard's session: who is signed in, and its CSRF token."""
    user = session.get(User, principal.user_id)
    assert user is not None
    csrf = request.session.get("csrf", "") if principal.via == "session" else ""
    return SessionRead(user=UserRead.model_validate(user), csrf_token=csrf)


@router.delete("/session", status_code=status.HTTP_204_NO_CONTENT)
def sign_out(request: Request, principal: PrincipalDep) -> Response:
    """Sign the dashboard out (its cookie is cleared)."""
    request.session.clear()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
