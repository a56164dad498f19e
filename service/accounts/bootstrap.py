"""The first start: a server with no user creates an admin and its token, writes the token
where the CLI reads it (owner-only), and prints a sign-in URL once."""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from optisweep.service.accounts import repository
from optisweep.service.accounts.models import Project, Role
from optisweep.service.accounts.schemas import DEFAULT_TOKEN_DAYS
from optisweep.service.accounts.tokens import token_file, write_token_file
from optisweep.service.config import Settings

logger = logging.getLogger(__name__)

ADMIN = "admin"


def first_start(sessions: sessionmaker[Session], settings: Settings) -> str | None:
    """Create the first admin if no user exists; its token (written to the token file), or
    None when users exist (or another server created them at the same moment)."""
    with sessions() as session:
        if repository.count_users(session):
            return None
        try:
            admin = repository.create_user(session, ADMIN, is_admin=True)
            default = session.scalar(select(Project).where(Project.name == "default"))
            if default is None:
                default = repository.create_project(session, "default")
            repository.set_member(session, default, admin, Role.OWNER)
            _, token = repository.create_token(
                session, admin, name="first start", days=DEFAULT_TOKEN_DAYS
            )
            repository.record(
                session,
                user_id=admin.id,
                user_name=ADMIN,
                action="user.create",
                target="user admin (admin), at the first start",
            )
            session.commit()
        except IntegrityError:  # another server's first start won
            session.rollback()
            return None
    path = token_file(settings.token_file)
    write_token_file(path, token)
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    print(
        f"optisweep: first start - created user 'admin'; its token is in {path} (mode 0600), "
        f"where the CLI reads it.\noptisweep: sign the dashboard in at "
        f"http://{host}:{settings.port}/login#token={token}",
        flush=True,
    )
    return token


def session_key(settings: Settings) -> str:
    """The key that signs the dashboard's session cookies: OPTISWEEP_SECRET_KEY, else one
    made once and kept beside the token file (owner-only). Servers sharing a database behind
    one address need the same key: set OPTISWEEP_SECRET_KEY."""
    if settings.secret_key:
        return settings.secret_key
    path = Path(token_file(settings.token_file)).with_name("session-key")
    if path.is_file():
        key = path.read_text().strip()
        if key:
            return key
    key = secrets.token_urlsafe(48)
    write_token_file(path, key)
    return key
