"""Queries and writes for users, tokens, projects, members and the audit log; callers commit."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from optisweep.service.accounts.models import ApiToken, AuditEvent, Membership, Project, Role, User
from optisweep.service.accounts.tokens import new_token, shown_prefix, token_hash
from optisweep.service.db.base import get_by_id, utcnow
from optisweep.service.errors import ConflictError, NotFoundError

LAST_USED_EVERY = timedelta(minutes=1)
"""How stale a token's last_used_at may get before a request writes it again."""


def count_users(session: Session) -> int:
    """How many users exist (none: the first start)."""
    return len(list(session.scalars(select(User.id).limit(1))))


def user_named(session: Session, name: str) -> User:
    """The user called ``name`` (NotFoundError)."""
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise NotFoundError(f"user {name!r} not found")
    return user


def create_user(session: Session, name: str, *, is_admin: bool = False) -> User:
    """A new user (ConflictError if the name is taken)."""
    if session.scalar(select(User.id).where(User.name == name)) is not None:
        raise ConflictError(f"a user named {name!r} exists")
    user = User(name=name, is_admin=is_admin)
    session.add(user)
    session.flush()
    return user


def list_users(session: Session) -> list[User]:
    """Every user, by name."""
    return list(session.scalars(select(User).order_by(User.name)))


def create_token(
    session: Session, user: User, *, name: str, days: int, now: datetime | None = None
) -> tuple[ApiToken, str]:
    """A new token for ``user``, valid for ``days``: its row, and the token itself (shown once,
    never stored)."""
    token = new_token()
    now = now or utcnow()
    row = ApiToken(
        user_id=user.id,
        name=name,
        token_hash=token_hash(token),
        prefix=shown_prefix(token),
        created_at=now,
        expires_at=now + timedelta(days=days),
    )
    session.add(row)
    session.flush()
    return row, token


def token_by_secret(session: Session, token: str) -> ApiToken | None:
    """The token row for this token, or None (unknown)."""
    return session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash(token)))


def usable(token: ApiToken, now: datetime | None = None) -> bool:
    """Whether a token may still sign in: not revoked, not expired."""
    now = now or utcnow()
    return token.revoked_at is None and token.expires_at > now


def touch(token: ApiToken, now: datetime | None = None) -> bool:
    """Note that the token was used (at most once a minute); whether anything changed."""
    now = now or utcnow()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_EVERY:
        token.last_used_at = now
        return True
    return False


def list_tokens(session: Session, user_id: int | None) -> list[ApiToken]:
    """A user's tokens (every user's for None), newest first."""
    statement = select(ApiToken).order_by(ApiToken.id.desc())
    if user_id is not None:
        statement = statement.where(ApiToken.user_id == user_id)
    return list(session.scalars(statement))


def get_token(session: Session, token_id: int) -> ApiToken:
    """A token row by id (NotFoundError)."""
    token = get_by_id(session, ApiToken, token_id)
    if token is None:
        raise NotFoundError(f"token {token_id} not found")
    return token


def create_project(session: Session, name: str) -> Project:
    """A new project (ConflictError if the name is taken)."""
    project = Project(name=name)
    try:
        with session.begin_nested():
            session.add(project)
            session.flush()
    except IntegrityError:
        raise ConflictError(f"a project named {name!r} exists") from None
    return project


def list_projects(session: Session, user_id: int | None) -> list[tuple[Project, Role | None]]:
    """Projects with the user's role in each: those they are in, or every one (None)."""
    if user_id is None:
        return [(p, None) for p in session.scalars(select(Project).order_by(Project.name))]
    rows = session.execute(
        select(Project, Membership.role)
        .join(Membership, Membership.project_id == Project.id)
        .where(Membership.user_id == user_id)
        .order_by(Project.name)
    )
    return [(project, role) for project, role in rows]


def set_member(session: Session, project: Project, user: User, role: Role) -> Membership:
    """Give ``user`` ``role`` in ``project`` (adding them, or changing their role)."""
    member = session.scalar(
        select(Membership).where(Membership.project_id == project.id, Membership.user_id == user.id)
    )
    if member is None:
        member = Membership(project_id=project.id, user_id=user.id, role=role)
        session.add(member)
    else:
        member.role = role
    session.flush()
    return member


def remove_member(session: Session, project: Project, user: User) -> None:
    """Take ``user`` out of ``project`` (NotFoundError if they were not in it)."""
    member = session.scalar(
        select(Membership).where(Membership.project_id == project.id, Membership.user_id == user.id)
    )
    if member is None:
        raise NotFoundError(f"{user.name!r} is not in project {project.name!r}")
    session.delete(member)
    session.flush()


def members(session: Session, project: Project) -> list[tuple[User, Role]]:
    """A project's members and their roles, by name."""
    rows = session.execute(
        select(User, Membership.role)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.project_id == project.id)
        .order_by(User.name)
    )
    return [(user, role) for user, role in rows]


def record(
    session: Session,
    *,
    user_id: int | None,
    user_name: str,
    action: str,
    target: str,
    project_id: int | None = None,
    address: str | None = None,
) -> AuditEvent:
    """Add an audit event (it is written with the change it records, in one transaction)."""
    event = AuditEvent(
        user_id=user_id,
        user_name=user_name,
        project_id=project_id,
        action=action,
        target=target[:200],
        address=address,
    )
    session.add(event)
    return event


def audit_events(
    session: Session, *, project_ids: list[int] | None, limit: int, before_id: int | None
) -> list[AuditEvent]:
    """Audit events newest first: of these projects (None: all, with those of no project)."""
    statement = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if project_ids is not None:
        statement = statement.where(AuditEvent.project_id.in_(project_ids))
    if before_id is not None:
        statement = statement.where(AuditEvent.id < before_id)
    return list(session.scalars(statement))
