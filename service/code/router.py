"""/code: upload a user's project (a zip) once, by content hash; sweeps name it as
``code.package`` and Ray ships it to the workers as the tasks' working directory."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response, status
from pydantic import BaseModel

from service.code.store import CodeStore, PackageError
from service.deps import SettingsDep
from service.errors import InputError
from service.routing import ErrorMessage

router = APIRouter(prefix="/code", tags=["code"])

UPLOAD_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The same package was stored before; nothing new is written."},
    403: {"model": ErrorMessage, "description": "This server does not accept uploaded code."},
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


def store_of(request: Request) -> CodeStore:
    """The server's code store."""
    store: CodeStore = request.app.state.code_store
    return store


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
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
async def upload_code(request: Request, response: Response, settings: SettingsDep) -> PackageRead:
    """Store a zip of a user's project (201; 200 when the same bytes were stored before).
    Uploaded code runs on the workers: only a server on a loopback address accepts it unless
    ``OPTISWEEP_ALLOW_CODE_UPLOAD=1``."""
    if not settings.code_upload_allowed():
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"this server listens on {settings.host}, not a loopback address, and uploaded code "
            "runs on the workers: set OPTISWEEP_ALLOW_CODE_UPLOAD=1 to accept it anyway",
        )
    data = await request.body()  # BodyLimit stops reading past max_code_bytes
    try:
        package, created = store_of(request).put(data)
    except PackageError as exc:
        raise InputError(str(exc), loc=("body",)) from None
    if not created:
        response.status_code = status.HTTP_200_OK
    return PackageRead(package=package.package, size=package.size, files=package.files)


@router.get("/{package}", responses={404: {"model": ErrorMessage}})
def get_code(package: str, request: Request) -> PackageRead:
    """A stored package's size and file count; 404 if no such package was uploaded."""
    try:
        found = store_of(request).get(package)
    except PackageError:
        found = None
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such code package")
    return PackageRead(package=found.package, size=found.size, files=found.files)
