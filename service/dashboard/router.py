"""The dashboard's API under /sweeps/{id}: chart data, importance and the CSV export."""

from __future__ import annotations

from fastapi import APIRouter

from optisweep.service.dashboard import charts, export, importance

router = APIRouter()
for part in (charts.router, importance.router, export.router):
    router.include_router(part)
