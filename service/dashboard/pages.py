"""The web dashboard: four pages (sweeps, a sweep, a trial, a comparison), their assets, and
ECharts.

Pages are static HTML and JavaScript that read the REST API (the same endpoints any external
dashboard uses) and poll it while a sweep runs. ECharts is served from ``vendor/``, where
every build of the package puts the version package-lock.json pins (``vendor.py``); nothing is
fetched from a CDN.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Body, Depends, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles

from optisweep.service.accounts.auth import authenticated
from optisweep.service.accounts.guard import page_session
from optisweep.service.dashboard.vendor import ECHARTS_JS
from optisweep.service.routing import TOO_LARGE, StrictRoute
from optisweep.service.yaml_spec import load_spec_text

STATIC = Path(__file__).parent / "static"

router = APIRouter(include_in_schema=False)
pages = APIRouter(include_in_schema=False, dependencies=[Depends(page_session)])
api = APIRouter(prefix="/specs", tags=["dashboard"], route_class=StrictRoute)


@router.get("/favicon.ico")
def favicon() -> FileResponse:
    """The dashboard's icon (an SVG: browsers that ask for /favicon.ico take one)."""
    return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")


@router.get("/login")
def login_page() -> FileResponse:
    """Sign in with an API token (the first start prints a link that fills it in)."""
    return FileResponse(STATIC / "login.html")


@pages.get("/")
def sweeps_page() -> FileResponse:
    """All sweeps, and a form to submit one."""
    return FileResponse(STATIC / "index.html")


@pages.get("/sweeps/{sweep_id}")
def sweep_page(sweep_id: int) -> FileResponse:
    """One sweep, live: progress, leaderboard, charts, trials."""
    return FileResponse(STATIC / "sweep.html")


@pages.get("/compare")
def compare_page() -> FileResponse:
    """Several sweeps side by side: performance profiles and time to target."""
    return FileResponse(STATIC / "compare.html")


@pages.get("/sweeps/{sweep_id}/trials/{number}")
def trial_page(sweep_id: int, number: int) -> FileResponse:
    """One trial, by its number in its sweep: hyperparameters, history, curves."""
    return FileResponse(STATIC / "trial.html")


@pages.get("/trials/{trial_id}")
def trial_page_by_id(trial_id: int) -> FileResponse:
    """One trial by its id (the page moves its address to the sweep's trial number)."""
    return FileResponse(STATIC / "trial.html")


router.include_router(pages)


def docs_router(app: FastAPI, prefix: str) -> APIRouter:
    """The OpenAPI schema and its Swagger UI, for signed-in users only."""
    docs = APIRouter(include_in_schema=False)

    @docs.get(f"{prefix}/openapi.json", dependencies=[Depends(authenticated)])
    def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @docs.get("/docs", dependencies=[Depends(page_session)])
    def swagger() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=f"{prefix}/openapi.json", title="optisweep API")

    return docs


@router.get("/static/vendor/echarts.min.js", response_model=None)
def echarts_asset() -> FileResponse | PlainTextResponse:
    """ECharts, as the build installed it; a 503 that says how to install it if missing."""
    if not ECHARTS_JS.is_file():
        return PlainTextResponse(
            f"echarts is not installed ({ECHARTS_JS} is missing): reinstall optisweep "
            "(`pip install -e .` in a source tree), which puts it there",
            status_code=503,
        )
    return FileResponse(ECHARTS_JS, media_type="text/javascript")


static_files = StaticFiles(directory=STATIC)


@api.post("/parse", responses=TOO_LARGE)
def parse_spec(text: str = Body(media_type="text/plain")) -> dict[str, Any]:
    """A sweep spec written as YAML (or JSON) turned into JSON, for POST /sweeps; YAML aliases
    (``*name``) are refused."""
    return load_spec_text(text)
