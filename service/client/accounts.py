"""Accounts as the client sees them: who is signed in, tokens, projects, members, users."""

from __future__ import annotations

from datetime import datetime

from optisweep.service.client.records import Record


class UserInfo(Record):
    """A user."""

    id: int
    name: str
    is_admin: bool
    created_at: datetime


class TokenInfo(Record):
    """An API token, without its secret."""

    id: int
    user_id: int
    name: str
    prefix: str
    """What lists show of it: its first characters."""
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None


class NewToken(TokenInfo):
    """A token just made: its secret is shown this once."""

    token: str


class ProjectInfo(Record):
    """A project, and the signed-in user's role in it."""

    id: int
    name: str
    created_at: datetime
    role: str | None = None


class Me(Record):
    """The signed-in user, the token they signed in with, and their projects."""

    user: UserInfo
    token: TokenInfo
    projects: list[ProjectInfo]


class Member(Record):
    """A user's role in a project."""

    user: str
    role: str


class NewUser(Record):
    """A user just made, and their first token (shown this once)."""

    user: UserInfo
    token: NewToken
