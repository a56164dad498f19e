"""The FastAPI application: create_app() and its lifespan (database, Ray, controller)."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import ray
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from service import health
from service.config import Settings
from service.controller.controller import Controller
from service.controller.ray_runtime import init_ray
from service.dashboard.pages import api as specs_router
from service.dashboard.pages import router as pages_router
from service.dashboard.pages import static_files
from service.dashboard.router import router as dashboard_router
from service.db.migrate import upgrade_engine
from service.db.session import make_engine, make_sessionmaker
from service.errors import ConflictError, InputError, NotFoundError
from service.sweeps.router import router as sweeps_router
from service.trials.router import router as trials_router

API_PREFIX = "/api/v1"
logger = logging.getLogger(__name__)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Migrate the database, start or join Ray, run the controller; undo it all on shutdown."""
    settings: Settings = app.state.settings
    engine = make_engine(settings.database_url)
    upgrade_engine(engine)
    sessions = make_sessionmaker(engine)
    app.state.sessions = sessions
    app.state.controller = None
    started_ray = False
    try:
        if app.state.run_controller:
            started_ray = init_ray(settings.ray_address)
            controller = Controller(
                sessions,
                max_trials=settings.max_trials,
                lease_seconds=settings.claim_lease_seconds,
                pack_memory_mb=settings.pack_memory_mb,
                checkpoint_dir=settings.checkpoint_dir,
            )
            controller.start()
            app.state.controller = controller
        # What is alive now (modules, torch, Ray, the ORM) lives as long as the server: keep it
        # out of the collector's full passes, which otherwise walk it all (~200 ms pauses in
        # the dashboard's tails).
        gc.collect()
        gc.freeze()
        yield
    finally:
        if app.state.controller is not None:
            app.state.controller.stop()
        if started_ray:
            ray.shutdown()
        engine.dispose()


def _not_found(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(status_code=404, content={"detail": str(exc)})


def _conflict(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(status_code=409, content={"detail": str(exc)})


def _bad_input(request: Request, exc: Exception) -> JSONResponse:
    loc = list(exc.loc) if isinstance(exc, InputError) else []
    return JSONResponse(
        status_code=422, content={"detail": [{"type": "value_error", "loc": loc, "msg": str(exc)}]}
    )


def _internal(request: Request, exc: Exception) -> JSONResponse:
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(status_code=500, content={"detail": "internal server error"})


def create_app(settings: Settings | None = None, *, run_controller: bool = True) -> FastAPI:
    """The API under /api/v1; with ``run_controller`` it also runs sweeps (on Ray)."""
    app = FastAPI(
        title="optisweep",
        summary="Hyperparameter sweeps over neural-network optimizers.",
        lifespan=lifespan,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url="/docs",
    )
    app.state.settings = settings or Settings()
    app.state.run_controller = run_controller
    app.add_exception_handler(NotFoundError, _not_found)
    app.add_exception_handler(ConflictError, _conflict)
    app.add_exception_handler(InputError, _bad_input)
    app.add_exception_handler(Exception, _internal)
    for router in (sweeps_router, trials_router, dashboard_router, specs_router, health.router):
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(pages_router)
    app.mount("/static", static_files, name="static")
    return app
