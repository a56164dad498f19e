"""The FastAPI application: create_app() and its lifespan (database, Ray, controller)."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import ray
from fastapi import Depends, FastAPI, Request, Response, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.routing import compile_path

from optisweep.service import debug, health
from optisweep.service.accounts.auth import RateLimits, admin, authenticated, limit_address
from optisweep.service.accounts.bootstrap import first_start, session_key
from optisweep.service.accounts.guard import SignInRequiredError, guarded
from optisweep.service.accounts.projects import router as projects_router
from optisweep.service.accounts.router import router as accounts_router
from optisweep.service.accounts.router import session_router
from optisweep.service.code.router import router as code_router
from optisweep.service.code.store import CodeStore
from optisweep.service.comparisons.router import router as comparisons_router
from optisweep.service.config import Settings
from optisweep.service.controller.loop import Controller
from optisweep.service.controller.ray_runtime import init_ray
from optisweep.service.dashboard.pages import api as specs_router
from optisweep.service.dashboard.pages import docs_router, static_files
from optisweep.service.dashboard.pages import router as pages_router
from optisweep.service.dashboard.router import router as dashboard_router
from optisweep.service.db.migrate import upgrade_engine
from optisweep.service.db.session import make_engine, make_sessionmaker
from optisweep.service.error_text import explained
from optisweep.service.errors import (
    ConflictError,
    ForbiddenError,
    InputError,
    NotFoundError,
    RateLimitedError,
    UnauthorizedError,
)
from optisweep.service.input_checks import echo, safe_text
from optisweep.service.routing import RATE_LIMITED, SIGNED_IN, TOO_LARGE, UNAUTHORIZED, BodyLimit
from optisweep.service.security import SecurityHeaders, allowed_hosts
from optisweep.service.sweeps.router import router as sweeps_router
from optisweep.service.sweeps.schemas import SweepCreate
from optisweep.service.trials.router import router as trials_router

API_PREFIX = "/api/v1"
SESSION_SECONDS = 12 * 3600
"""How long a dashboard sign-in lasts (its token's expiry and revocation end it sooner)."""
logger = logging.getLogger(__name__)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Migrate the database, start or join Ray, run the controller; undo it all on shutdown."""
    settings: Settings = app.state.settings
    engine = make_engine(settings.database_url)
    upgrade_engine(engine)
    sessions = make_sessionmaker(engine)
    app.state.sessions = sessions
    first_start(sessions, settings)
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
                code_store=app.state.code_store,
                inspect_timeout=settings.inspect_timeout_seconds,
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


def _unauthorized(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(
        status_code=401, content={"detail": str(exc)}, headers={"WWW-Authenticate": "Bearer"}
    )


def _forbidden(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(status_code=403, content={"detail": str(exc)})


def _rate_limited(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RateLimitedError)
    return JSONResponse(
        status_code=429, content={"detail": str(exc)}, headers={"Retry-After": str(exc.retry_after)}
    )


def _sign_in(request: Request, exc: Exception) -> RedirectResponse:
    """A dashboard page without a session: to the sign-in page, and back after it."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


MAX_ERRORS = 10
"""The most errors one 422 lists (a long list of bad items would otherwise make it large)."""


def _invalid(errors: Sequence[Any]) -> JSONResponse:
    """A 422 in FastAPI's shape, each error's loc, input and ctx cut short and made encodable."""
    detail = []
    for error in errors[:MAX_ERRORS]:
        item = {
            "type": error["type"],
            "loc": [
                part if isinstance(part, int) else safe_text(str(part)) for part in error["loc"]
            ],
            "msg": error["msg"],
        }
        if "input" in error:
            item["input"] = echo(error["input"])
        ctx = {  # an exception in ctx only repeats msg
            name: echo(value)
            for name, value in (error.get("ctx") or {}).items()
            if not isinstance(value, BaseException)
        }
        if ctx:
            item["ctx"] = ctx
        detail.append(item)
    if len(errors) > MAX_ERRORS:
        detail.append(
            {"type": "too_many_errors", "loc": [], "msg": f"and {len(errors) - MAX_ERRORS} more"}
        )
    return JSONResponse(status_code=422, content={"detail": detail})


_SPEC_PATHS = ("/sweeps", "/specs/parse")
"""Where a request body is a sweep spec, whose unknown keys get a "did you mean"."""


def _request_invalid(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    spec = request.method == "POST" and request.url.path.endswith(_SPEC_PATHS)
    return _invalid(explained([dict(e) for e in exc.errors()], SweepCreate if spec else None))


def _bad_input(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InputError)
    return _invalid([{"type": exc.error_type, "loc": exc.loc, "msg": str(exc)}])


async def _http_error(request: Request, exc: Exception) -> Response:
    """FastAPI's answer, except that a 405's Allow names every method of the path."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == status.HTTP_405_METHOD_NOT_ALLOWED:
        path = request.scope["path"]
        methods: set[str] = set()
        for route in iter_route_contexts(request.app.routes):
            if route.methods and route.path and compile_path(route.path)[0].match(path):
                methods |= route.methods
        exc = StarletteHTTPException(405, headers={"Allow": ", ".join(sorted(methods))})
    return await http_exception_handler(request, exc)


def _internal(request: Request, exc: Exception) -> JSONResponse:
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(status_code=500, content={"detail": "internal server error"})


def create_app(settings: Settings | None = None, *, run_controller: bool = True) -> FastAPI:
    """The API under /api/v1; with ``run_controller`` it also runs sweeps (on Ray)."""
    settings = settings or Settings()
    app = FastAPI(
        title="optisweep",
        summary="Hyperparameter sweeps over neural-network optimizers.",
        lifespan=lifespan,
        openapi_url=None,  # served below, to signed-in users only
        docs_url=None,
    )
    app.state.settings = settings
    app.state.code_store = CodeStore(settings.code_dir)
    app.state.run_controller = run_controller
    app.state.rate_limits = RateLimits(settings.rate_limit, settings.rate_limit_anonymous)
    _add_middleware(app, settings)
    for error, handler in (
        (NotFoundError, _not_found),
        (ConflictError, _conflict),
        (UnauthorizedError, _unauthorized),
        (ForbiddenError, _forbidden),
        (RateLimitedError, _rate_limited),
        (SignInRequiredError, _sign_in),
        (InputError, _bad_input),
        (RequestValidationError, _request_invalid),
        (StarletteHTTPException, _http_error),
        (Exception, _internal),
    ):
        app.add_exception_handler(error, handler)
    guarded_routers = (
        sweeps_router,
        trials_router,
        comparisons_router,
        dashboard_router,
        specs_router,
    )
    for router in guarded_routers:
        app.include_router(
            router, prefix=API_PREFIX, dependencies=[Depends(guarded)], responses=SIGNED_IN
        )
    for router in (code_router, accounts_router, projects_router):
        app.include_router(
            router,
            prefix=API_PREFIX,
            dependencies=[Depends(authenticated)],
            responses={**SIGNED_IN, **TOO_LARGE},
        )
    app.include_router(
        health.router,
        prefix=API_PREFIX,
        dependencies=[Depends(limit_address)],
        responses=RATE_LIMITED,
    )
    app.include_router(
        session_router,
        prefix=API_PREFIX,
        dependencies=[Depends(limit_address)],
        responses={**UNAUTHORIZED, **RATE_LIMITED, **TOO_LARGE},
    )
    if settings.debug:
        app.include_router(
            debug.router, prefix=API_PREFIX, dependencies=[Depends(admin)], responses=SIGNED_IN
        )
    app.include_router(docs_router(app, API_PREFIX))
    app.include_router(pages_router)
    app.mount("/static", static_files, name="static")
    return app


def _add_middleware(app: FastAPI, settings: Settings) -> None:
    """Body limits, sessions, CORS (if configured), security headers, trusted hosts; the last
    added runs first."""
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_request_bytes,
        per_path={f"{API_PREFIX}/code": settings.max_code_bytes},
    )
    app.add_middleware(
        SessionMiddleware,
        secret_key=session_key(settings),
        session_cookie="optisweep_session",
        max_age=SESSION_SECONDS,
        same_site="strict",
        https_only=settings.secure_cookies,
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
        )
    app.add_middleware(SecurityHeaders)
    app.add_middleware(
        TrustedHostMiddleware, allowed_hosts=allowed_hosts(settings.host, settings.allowed_hosts)
    )
