"""/code: upload a user's project (a zip) once, by content hash; sweeps name it as
``code.package`` and Ray ships it to the workers as the tasks' working directory."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from optisweep.service import idempotency
from optisweep.service.accounts.access import (
    Principal,
    default_project,
    project_named,
    require_role,
    visible_projects,
)
from optisweep.service.accounts.auth import PrincipalDep, audit
from optisweep.service.accounts.models import CodePackage, Project, Role
from optisweep.service.code.store import CodeStore, PackageError
from optisweep.service.deps import SessionDep
from optisweep.service.errors import InputError
from optisweep.service.idempotency import Claim, IdempotencyKey, body_hash
from optisweep.service.routing import ErrorMessage

ProjectQuery = Annotated[
    str | None,
    Query(description="The project to upload to (default: your only project, or 'default')."),
]

router = APIRouter(prefix="/code", tags=["code"])

UPLOAD_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The same package was stored before; nothing new is written."},
    403: {"model": ErrorMessage, "description": "Uploading needs the member role."},
    422: {"description": "The body is not a zip archive Ray can use as a working directory."},
    413: {"model": ErrorMessage, "description": "The package is larger than max_code_bytes."},
}


class PackageRead(BaseModel):
    """A stored code package."""

    package: str
    """Its id, the sha256 of the archive: give it as a sweep's ``code.package``."""
    size: int
    """The archive's size in bytes."""
    files: int
    project: str
    """The project it was uploaded to: its sweeps may name it."""


def store_of(request: Request) -> CodeStore:
    """The server's code store."""
    store: CodeStore = request.app.state.code_store
    return store


def package_in(session: Session, project_id: int, package: str) -> bool:
    """Whether ``package`` was uploaded to the project."""
    return (
        session.scalar(
            select(CodePackage.id).where(
                CodePackage.project_id == project_id, CodePackage.package == package
            )
        )
        is not None
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=PackageRead,
    responses=UPLOAD_RESPONSES,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def upload_code(
    request: Request,
    principal: PrincipalDep,
    project: ProjectQuery = None,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Store a zip of a user's project in a project (201; 200 when the same bytes are in it
    already). Uploaded code runs on the workers: it needs the member role there."""
    data = await request.body()  # BodyLimit stops reading past max_code_bytes
    return await run_in_threadpool(_upload, request, principal, project, data, idempotency_key)


def _upload(
    request: Request, principal: Principal, project: str | None, data: bytes, key: str | None
) -> Response:
    """The upload, once per Idempotency-Key."""
    sessions = request.app.state.sessions
    claim = None
    if key is not None:
        digest = body_hash(f"{project}\n".encode() + data)
        with sessions() as session:
            begun = idempotency.begin(
                session, user_id=principal.user_id, route="POST /code", key=key, digest=digest
            )
        if not isinstance(begun, Claim):
            return begun
        claim = begun
    try:
        return _store(request, principal, project, data, claim)
    except BaseException:
        if claim is not None:
            idempotency.abandon(sessions, claim)
        raise


def _store(
    request: Request, principal: Principal, project: str | None, data: bytes, claim: Claim | None
) -> Response:
    sessions = request.app.state.sessions
    with sessions() as session:
        found = (
            project_named(session, principal, project)
            if project is not None
            else default_project(session, principal)
        )
        require_role(
            session, principal, found.id, Role.MEMBER, hidden=f"project {project!r} not found"
        )
        try:
            package, _ = store_of(request).put(data)
        except PackageError as exc:
            raise InputError(str(exc), loc=("body",)) from None
        code = status.HTTP_201_CREATED
        if package_in(session, found.id, package.package):
            code = status.HTTP_200_OK
        else:
            session.add(
                CodePackage(
                    project_id=found.id, package=package.package, uploaded_by=principal.user_id
                )
            )
            audit(
                session,
                request,
                principal,
                "code.upload",
                f"package {package.package[:16]}... ({package.size} bytes)",
                project_id=found.id,
            )
        body = PackageRead(
            package=package.package, size=package.size, files=package.files, project=found.name
        ).model_dump(mode="json")
        if claim is not None:
            idempotency.finish(session, claim, status_code=code, body=body, headers={})
        session.commit()
        return JSONResponse(body, status_code=code)


@router.get("/{package}", responses={404: {"model": ErrorMessage}})
def get_code(
    package: str, request: Request, principal: PrincipalDep, session: SessionDep
) -> PackageRead:
    """A stored package's size and file count; 404 unless it was uploaded to a project the
    signed-in user is in."""
    projects = visible_projects(session, principal)
    statement = select(CodePackage.project_id).where(CodePackage.package == package)
    if projects is not None:
        statement = statement.where(CodePackage.project_id.in_(projects))
    project_id = session.scalar(statement.limit(1))
    try:
        found = store_of(request).get(package) if project_id is not None else None
    except PackageError:
        found = None
    if found is None or project_id is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such code package")
    project = session.get(Project, project_id)
    assert project is not None
    return PackageRead(
        package=found.package, size=found.size, files=found.files, project=project.name
    )
