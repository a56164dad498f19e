"""/comparisons: several sweeps side by side (time to target, performance profiles)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from optisweep.service.accounts.auth import PrincipalDep
from optisweep.service.comparisons.schemas import Comparison
from optisweep.service.comparisons.service import Target, compare
from optisweep.service.deps import SessionDep
from optisweep.service.errors import InputError
from optisweep.service.routing import NOT_FOUND, StrictRoute
from optisweep.service.sweeps.report import DEFAULT_TOLERANCE

router = APIRouter(prefix="/comparisons", tags=["comparisons"], route_class=StrictRoute)
MAX_SWEEPS = 20


def sweep_ids(text: str) -> list[int]:
    """``1,2,3`` as sweep ids; InputError naming ``sweeps`` if it is not such a list."""
    parts = [part.strip() for part in text.split(",")]
    if not all(part.isdigit() for part in parts) or not 1 <= len(parts) <= MAX_SWEEPS:
        raise InputError(
            f"sweeps: 1 to {MAX_SWEEPS} sweep ids separated by commas, got {text[:80]!r}",
            loc=("query", "sweeps"),
        )
    ids = [int(part) for part in parts]
    if len(set(ids)) != len(ids):
        raise InputError(f"sweeps: a sweep is named twice in {text!r}", loc=("query", "sweeps"))
    return ids


@router.get("", responses=NOT_FOUND)
def get_comparison(
    session: SessionDep,
    principal: PrincipalDep,
    sweeps: Annotated[str, Query(max_length=200, description="Sweep ids: 1,2,3.")],
    target: Annotated[
        list[str] | None,
        Query(
            max_length=10,
            description="METRIC>=VALUE, METRIC<=VALUE, or METRIC=VALUE for a sweep's objective "
            "(repeatable: each sweep takes the one on its objective, else one on a metric it "
            "reports). Without one, each sweep's target is `fraction` of the way from its "
            "first epoch's median to the best reached.",
        ),
    ] = None,
    fraction: Annotated[float, Query(gt=0, le=1)] = 0.95,
    tolerance: Annotated[
        float, Query(gt=0, lt=1, description="Of the final best, for tuning cost.")
    ] = DEFAULT_TOLERANCE,
    measure: Literal["auto", "seconds", "epochs"] = "auto",
) -> Comparison:
    """Per sweep and optimizer family: the best objective, epochs and seconds to the target,
    and the trials tuning took; per family, its performance profile over the sweeps."""
    return compare(
        session,
        principal,
        sweep_ids=sweep_ids(sweeps),
        targets=[Target.parse(text) for text in target or []],
        fraction=fraction,
        tolerance=tolerance,
        measure=measure,
    )
