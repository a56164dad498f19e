"""/projects and /audit: projects (admins create them), their members (owners manage them),
and the audit log (admins see all of it, owners their projects')."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, status

from optisweep.service.accounts import repository
from optisweep.service.accounts.access import project_named, require_role, role_in
from optisweep.service.accounts.auth import AdminDep, PrincipalDep, audit
from optisweep.service.accounts.models import Role
from optisweep.service.accounts.schemas import (
    AuditPage,
    AuditRead,
    MemberRead,
    MemberSet,
    ProjectCreate,
    ProjectRead,
)
from optisweep.service.deps import SessionDep
from optisweep.service.errors import ForbiddenError
from optisweep.service.pagination import decode_cursor, encode_cursor
from optisweep.service.routing import CONFLICT, StrictRoute

router = APIRouter(tags=["projects"], route_class=StrictRoute)


@router.post("/projects", status_code=status.HTTP_201_CREATED, responses=CONFLICT)
def create_project(
    body: ProjectCreate, request: Request, principal: AdminDep, session: SessionDep
) -> ProjectRead:
    """A new project, optionally with its first owner; admins only."""
    project = repository.create_project(session, body.name)
    if body.owner is not None:
        repository.set_member(
            session, project, repository.user_named(session, body.owner), Role.OWNER
        )
    audit(
        session,
        request,
        principal,
        "project.create",
        f"project {project.name}" + (f", owner {body.owner}" if body.owner else ""),
        project_id=project.id,
    )
    return ProjectRead(id=project.id, name=project.name, created_at=project.created_at)


@router.get("/projects")
def list_projects(principal: PrincipalDep, session: SessionDep) -> list[ProjectRead]:
    """The projects the signed-in user is in, with their role (an admin: every project)."""
    rows = repository.list_projects(session, None if principal.is_admin else principal.user_id)
    return [
        ProjectRead(
            id=p.id,
            name=p.name,
            created_at=p.created_at,
            role=role or role_in(session, principal, p.id),
        )
        for p, role in rows
    ]


@router.get("/projects/{project}/members")
def list_members(project: str, principal: PrincipalDep, session: SessionDep) -> list[MemberRead]:
    """A project's members and their roles (anyone in it may see them)."""
    found = project_named(session, principal, project)
    return [MemberRead(user=u.name, role=r) for u, r in repository.members(session, found)]


@router.put("/projects/{project}/members/{user}")
def set_member(
    project: str,
    user: str,
    body: MemberSet,
    request: Request,
    principal: PrincipalDep,
    session: SessionDep,
) -> MemberRead:
    """Add a user to a project or change their role (its owners and admins)."""
    found = project_named(session, principal, project)
    require_role(session, principal, found.id, Role.OWNER, hidden=f"project {project!r} not found")
    member = repository.user_named(session, user)
    repository.set_member(session, found, member, body.role)
    audit(
        session,
        request,
        principal,
        "member.set",
        f"{member.name} is {body.role.value} of {found.name}",
        project_id=found.id,
    )
    return MemberRead(user=member.name, role=body.role)


@router.delete("/projects/{project}/members/{user}", status_code=status.HTTP_204_NO_CONTENT)
def remove_member(
    project: str, user: str, request: Request, principal: PrincipalDep, session: SessionDep
) -> None:
    """Take a user out of a project (its owners and admins)."""
    found = project_named(session, principal, project)
    require_role(session, principal, found.id, Role.OWNER, hidden=f"project {project!r} not found")
    member = repository.user_named(session, user)
    repository.remove_member(session, found, member)
    audit(
        session,
        request,
        principal,
        "member.remove",
        f"{member.name} left {found.name}",
        project_id=found.id,
    )


@router.get("/audit")
def audit_log(
    principal: PrincipalDep,
    session: SessionDep,
    project: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> AuditPage:
    """Who submitted, cancelled, uploaded, created or revoked what, when and from where:
    admins see every event, owners those of their projects (newest first)."""
    if project is not None:
        found = project_named(session, principal, project)
        require_role(
            session, principal, found.id, Role.OWNER, hidden=f"project {project!r} not found"
        )
        project_ids: list[int] | None = [found.id]
    elif principal.is_admin:
        project_ids = None
    else:
        owned = [
            p.id
            for p, role in repository.list_projects(session, principal.user_id)
            if role == Role.OWNER
        ]
        if not owned:
            raise ForbiddenError("the audit log is for admins and project owners")
        project_ids = owned
    before_id = decode_cursor(cursor, kinds=("id",))[0] if cursor is not None else None
    events = repository.audit_events(
        session, project_ids=project_ids, limit=limit + 1, before_id=before_id
    )
    page = events[:limit]
    return AuditPage(
        items=[AuditRead.model_validate(e) for e in page],
        next_cursor=encode_cursor(page[-1].id) if len(events) > limit else None,
    )
