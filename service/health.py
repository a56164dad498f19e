"""/healthz (the process answers) and /readyz (the database and Ray answer too)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

import ray
from fastapi import APIRouter, Response, status
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from service.controller.ray_runtime import cluster_capacity
from service.deps import ControllerDep, SessionDep

router = APIRouter(tags=["health"])

RAY_TIMEOUT_SECONDS = 3.0
_ray_probe = ThreadPoolExecutor(max_workers=1, thread_name_prefix="optisweep-readyz")


class Health(BaseModel):
    """Liveness."""

    status: str


class Readiness(BaseModel):
    """Readiness, with what each dependency said."""

    status: str
    database: str
    ray: str
    cpus: float | None = None
    gpus: float | None = None


@router.get("/healthz")
def healthz() -> Health:
    """The server process is up."""
    return Health(status="ok")


@router.get("/readyz", responses={503: {"model": Readiness}})
def readyz(session: SessionDep, controller: ControllerDep, response: Response) -> Readiness:
    """The database answers a query and the Ray cluster reports its resources."""
    readiness = Readiness(status="ready", database="ok", ray="ok")
    ready = True
    try:
        session.execute(text("SELECT 1")).scalar()
    except SQLAlchemyError as exc:
        readiness.database = f"unreachable: {str(exc).splitlines()[0]}"
        ready = False
    if controller is None:
        readiness.ray = "not used (server runs without a controller)"
    elif not ray.is_initialized():
        readiness.ray, ready = "not initialised", False
    else:
        try:
            readiness.cpus, readiness.gpus = _ray_probe.submit(cluster_capacity).result(
                timeout=RAY_TIMEOUT_SECONDS
            )
        except FutureTimeout:
            readiness.ray, ready = f"no answer within {RAY_TIMEOUT_SECONDS:g} s", False
        except Exception as exc:
            readiness.ray, ready = f"unreachable: {type(exc).__name__}: {exc}", False
    if not ready:
        readiness.status = "not ready"
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return readiness
