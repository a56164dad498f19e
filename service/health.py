"""/healthz (the process answers) and /readyz (the database, Ray, the controller and the
checkpoint folder are fit for work too)."""

from __future__ import annotations

import tempfile
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

import ray
from fastapi import APIRouter, Response, status
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from optisweep.service.controller.ray_runtime import cluster_capacity
from optisweep.service.deps import ControllerDep, SessionDep, SettingsDep

router = APIRouter(tags=["health"])

RAY_TIMEOUT_SECONDS = 3.0
FAILED_TICKS_NOT_READY = 3
"""The controller failing this many ticks in a row (the database down, say) is not ready."""
_ray_probe = ThreadPoolExecutor(max_workers=1, thread_name_prefix="optisweep-readyz")


class Health(BaseModel):
    """Liveness."""

    status: str


class Readiness(BaseModel):
    """Readiness, with what each dependency said."""

    status: str
    database: str
    ray: str
    controller: str = "ok"
    checkpoints: str = "ok"
    """Whether trials can write their checkpoints (the folder exists or can be made, and a
    file can be written in it)."""
    cpus: float | None = None
    gpus: float | None = None
    workers: str = "warm"
    """"warm" once the workers' warm-up (the training stack's imports) finished, else "warming
    up": the server is not ready yet (trials would share the CPUs with the warm-up), unless
    the warm-up has taken more than a minute (a busy cluster), when it is."""


@router.get("/healthz")
def healthz() -> Health:
    """The server process is up."""
    return Health(status="ok")


def checkpoints_writable(folder: str) -> str:
    """ "ok" if a file can be written in the checkpoint folder, "off" without one, else why
    not (without the path: responses do not show the server's file system)."""
    if not folder:
        return "off"
    try:
        root = Path(folder).expanduser()
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".readyz-"):
            pass
    except OSError as exc:
        return f"not writable: {type(exc).__name__} ({exc.strerror or 'error'})"
    return "ok"


@router.get("/readyz", responses={503: {"model": Readiness}})
def readyz(
    session: SessionDep, controller: ControllerDep, settings: SettingsDep, response: Response
) -> Readiness:
    """The database answers a query, the Ray cluster reports its resources, its workers have
    warmed up, the controller's ticks succeed and checkpoints can be written."""
    readiness = Readiness(status="ready", database="ok", ray="ok")
    readiness.checkpoints = checkpoints_writable(settings.checkpoint_dir)
    ready = readiness.checkpoints in ("ok", "off")
    if controller is None:
        readiness.controller = "not running (server runs without a controller)"
    elif controller.failed_ticks >= FAILED_TICKS_NOT_READY:
        readiness.controller = (
            f"failing: {controller.failed_ticks} ticks in a row, last: {controller.last_error}"
        )
        ready = False
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
            warm = _ray_probe.submit(controller.workers_warm).result(timeout=RAY_TIMEOUT_SECONDS)
            readiness.workers = "warm" if warm else "warming up"
            # Ready to train at full speed: a sweep sent during the warm-up would share the
            # CPUs with it (unless it takes longer than a warm-up should: a busy cluster).
            ready = ready and (warm or controller.warm_up_overdue())
        except FutureTimeout:
            readiness.ray, ready = f"no answer within {RAY_TIMEOUT_SECONDS:g} s", False
        except Exception as exc:
            readiness.ray, ready = f"unreachable: {type(exc).__name__}: {exc}", False
    if not ready:
        readiness.status = "not ready"
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return readiness
