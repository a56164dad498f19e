"""Debugging routes, on only with ``OPTISWEEP_DEBUG=1`` (tests use them to look inside the
server process): which modules it has imported, so a test can show it never imported a
user's code."""

from __future__ import annotations

import sys

from fastapi import APIRouter

router = APIRouter(prefix="/debug", tags=["debug"], include_in_schema=False)


@router.get("/modules")
def imported_modules() -> list[str]:
    """The names of every module this server process has imported, sorted."""
    return sorted(sys.modules)
