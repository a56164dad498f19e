"""Request and response bodies of the accounts API: users, tokens, projects, members, audit."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints

from optisweep.service.accounts.models import Role
from optisweep.service.sweeps.params import StrictModel

AccountName = Annotated[
    str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$", max_length=64)
]
"""A user or project name: lower-case letters, digits, '.', '_' and '-' (up to 64)."""

MAX_TOKEN_DAYS = 365
DEFAULT_TOKEN_DAYS = 90


class Read(BaseModel):
    """A response read from ORM rows."""

    model_config = ConfigDict(from_attributes=True)


class UserCreate(StrictModel):
    """A new user (admins only)."""

    name: AccountName
    is_admin: StrictBool = False


class UserRead(Read):
    """A user."""

    id: int
    name: str
    is_admin: bool
    created_at: datetime


class TokenCreate(StrictModel):
    """A new token for the signed-in user."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=100)] = "cli"
    days: int = Field(default=DEFAULT_TOKEN_DAYS, ge=1, le=MAX_TOKEN_DAYS)
    """How long it is valid."""


class TokenRead(Read):
    """A token, without its secret (only its first characters)."""

    id: int
    user_id: int
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


class TokenCreated(TokenRead):
    """A token just created: the only time its secret is shown."""

    token: str


class UserCreated(BaseModel):
    """A user just created, and their first token (shown once)."""

    user: UserRead
    token: TokenCreated


class ProjectCreate(StrictModel):
    """A new project (admins only), optionally with its first owner."""

    name: AccountName
    owner: AccountName | None = None


class ProjectRead(Read):
    """A project, and the signed-in user's role in it (None: an admin outside it)."""

    id: int
    name: str
    created_at: datetime
    role: Role | None = None


class MemberSet(StrictModel):
    """A user's role in a project."""

    role: Role


class MemberRead(BaseModel):
    """A project's member."""

    user: str
    role: Role


class Me(BaseModel):
    """The signed-in user, the token they signed in with, and their projects."""

    user: UserRead
    token: TokenRead
    projects: list[ProjectRead]


class SessionCreate(StrictModel):
    """Signing the dashboard in with an API token."""

    token: Annotated[str, StringConstraints(min_length=1, max_length=200)]


class SessionRead(BaseModel):
    """The dashboard's session: who is signed in, and the CSRF token its changes send."""

    user: UserRead
    csrf_token: str


class AuditRead(Read):
    """One audit event."""

    id: int
    at: datetime
    user_name: str
    project_id: int | None
    action: str
    target: str
    address: str | None


class AuditPage(BaseModel):
    """A page of audit events, newest first."""

    items: list[AuditRead]
    next_cursor: str | None
