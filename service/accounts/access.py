"""Who may do what: a signed-in principal's role in a project, and the rules that follow.

A project's sweeps, trials and packages are invisible to whoever is not in it (404, as if
they did not exist); a member without the role an action needs gets a 403. Admins may do
everything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from optisweep.service.accounts.models import ROLE_RANK, Membership, Project, Role
from optisweep.service.db.base import get_by_id
from optisweep.service.errors import ForbiddenError, NotFoundError
from optisweep.service.sweeps.models import Sweep
from optisweep.service.trials.models import Trial


@dataclass(frozen=True)
class Principal:
    """Who a request comes from: a user, through one of their tokens."""

    user_id: int
    name: str
    is_admin: bool
    token_id: int
    via: Literal["bearer", "session"]
    """An Authorization header, or the dashboard's session cookie (which needs CSRF checks)."""


def role_in(session: Session, principal: Principal, project_id: int) -> Role | None:
    """The principal's role in a project (an admin's: owner), or None if not in it."""
    if principal.is_admin:
        return Role.OWNER
    return session.scalar(
        select(Membership.role).where(
            Membership.project_id == project_id, Membership.user_id == principal.user_id
        )
    )


def visible_projects(session: Session, principal: Principal) -> list[int] | None:
    """The projects whose sweeps the principal may see; None: all of them (an admin)."""
    if principal.is_admin:
        return None
    return list(
        session.scalars(
            select(Membership.project_id).where(Membership.user_id == principal.user_id)
        )
    )


def require_role(
    session: Session, principal: Principal, project_id: int, role: Role, *, hidden: str
) -> Role:
    """The principal's role in the project if it is at least ``role``; NotFoundError with
    ``hidden`` if they are not in the project, ForbiddenError if their role is too low."""
    found = role_in(session, principal, project_id)
    if found is None:
        raise NotFoundError(hidden)
    if ROLE_RANK[found] < ROLE_RANK[role]:
        raise ForbiddenError(
            f"this needs the {role.value} role in the project; yours: {found.value}"
        )
    return found


def project_named(session: Session, principal: Principal, name: str) -> Project:
    """The project called ``name`` if the principal is in it (NotFoundError otherwise)."""
    project = session.scalar(select(Project).where(Project.name == name))
    if project is None or role_in(session, principal, project.id) is None:
        raise NotFoundError(f"project {name!r} not found")
    return project


def default_project(session: Session, principal: Principal) -> Project:
    """The project a request that names none goes to: the only one the user is in, else
    ``default`` if they are in it (an admin always is); NotFoundError naming the choice."""
    if principal.is_admin:
        found = session.scalar(select(Project).where(Project.name == "default"))
        if found is not None:
            return found
    projects = list(
        session.scalars(
            select(Project)
            .join(Membership, Membership.project_id == Project.id)
            .where(Membership.user_id == principal.user_id)
            .order_by(Project.name)
        )
    )
    if len(projects) == 1:
        return projects[0]
    for project in projects:
        if project.name == "default":
            return project
    if not projects:
        raise NotFoundError("you are in no project: ask an admin or a project owner to add you")
    names = ", ".join(p.name for p in projects)
    raise NotFoundError(f"you are in several projects ({names}): name one with project")


def check_sweep(
    session: Session, principal: Principal, sweep_id: int, *, action: Literal["read", "cancel"]
) -> Sweep:
    """The sweep if the principal may ``action`` it: read (viewer), cancel (its submitter with
    the member role, or an owner)."""
    hidden = f"sweep {sweep_id} not found"
    sweep = get_by_id(session, Sweep, sweep_id)
    if sweep is None:
        raise NotFoundError(hidden)
    needed = Role.VIEWER if action == "read" else Role.MEMBER
    role = require_role(session, principal, sweep.project_id, needed, hidden=hidden)
    if action == "cancel" and role != Role.OWNER and sweep.created_by != principal.user_id:
        raise ForbiddenError("members cancel the sweeps they submitted; this needs the owner role")
    return sweep


def check_trial(session: Session, principal: Principal, trial_id: int) -> None:
    """NotFoundError unless the principal may read the trial's sweep."""
    hidden = f"trial {trial_id} not found"
    trial = get_by_id(session, Trial, trial_id)
    if trial is None:
        raise NotFoundError(hidden)
    project_id = session.scalar(select(Sweep.project_id).where(Sweep.id == trial.sweep_id))
    if project_id is None:
        raise NotFoundError(hidden)
    require_role(session, principal, project_id, Role.VIEWER, hidden=hidden)
