"""/sweeps: submit, list, inspect and cancel sweeps; their trials, leaderboard and report."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response, status

from optimizers import OPTIMIZERS
from optimizers.schemas import short_repr
from service.deps import ControllerDep, SessionDep, SettingsDep
from service.errors import InputError
from service.pagination import decode_cursor, encode_cursor
from service.routing import CONFLICT, NOT_FOUND, TOO_LARGE, StrictRoute
from service.sweeps import repository
from service.sweeps.models import SweepStatus
from service.sweeps.report import DEFAULT_TOLERANCE, OptimizerReport, optimizer_report
from service.sweeps.schemas import SweepCreate, SweepPage, SweepRead
from service.sweeps.service import submit_sweep
from service.sweeps.views import best_of, leaderboard_read, sweep_read
from service.trials.models import TrialStatus
from service.trials.repository import TrialSort, list_trials
from service.trials.schemas import Leaderboard, TrialPage, trial_read

router = APIRouter(prefix="/sweeps", tags=["sweeps"], route_class=StrictRoute)

Limit = Annotated[int, Query(ge=1, le=1000, description="Page size.")]
Cursor = Annotated[str | None, Query(description="next_cursor of the previous page.")]


@router.post("", status_code=status.HTTP_201_CREATED, responses=TOO_LARGE)
def create_sweep(
    spec: SweepCreate,
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    controller: ControllerDep,
) -> SweepRead:
    """Submit a sweep; it is checked in full (a 422 names the field) and queued, or not written."""
    sweep = submit_sweep(
        session,
        spec,
        max_trials=settings.max_trials,
        feasible=controller.check_feasible if controller is not None else None,
        inspect=controller.inspect if controller is not None else None,
        code_store=request.app.state.code_store,
    )
    session.commit()
    if controller is not None:
        controller.wake()
    response.headers["Location"] = str(request.url_for("get_sweep", sweep_id=sweep.id))
    return sweep_read(sweep, {})


@router.get("")
def list_sweeps(
    session: SessionDep,
    status: SweepStatus | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> SweepPage:
    """Sweeps, newest first, optionally only those in one status."""
    before_id = None
    if cursor is not None:
        (before_id,) = decode_cursor(cursor, kinds=("id",))
    sweeps = repository.list_sweeps(session, status=status, limit=limit + 1, before_id=before_id)
    page, more = sweeps[:limit], len(sweeps) > limit
    counts = repository.trial_counts(session, (sweep.id for sweep in page))
    best = best_of(session, page)
    return SweepPage(
        items=[sweep_read(sweep, counts[sweep.id], best.get(sweep.id)) for sweep in page],
        next_cursor=encode_cursor(page[-1].id) if more else None,
    )


@router.get("/{sweep_id}", responses=NOT_FOUND)
def get_sweep(sweep_id: int, session: SessionDep) -> SweepRead:
    """One sweep with its trial counts by status."""
    sweep = repository.get_sweep(session, sweep_id)
    counts = repository.trial_counts(session, [sweep_id])[sweep_id]
    return sweep_read(sweep, counts, best_of(session, [sweep]).get(sweep_id))


@router.post("/{sweep_id}/cancel", responses={**NOT_FOUND, **CONFLICT})
def cancel_sweep(sweep_id: int, session: SessionDep, controller: ControllerDep) -> SweepRead:
    """Cancel a pending or running sweep (409 if it already finished); running trials stop."""
    sweep = repository.cancel_sweep(session, sweep_id)
    session.commit()
    if controller is not None:
        controller.wake()
    return sweep_read(sweep, repository.trial_counts(session, [sweep_id])[sweep_id])


@router.get("/{sweep_id}/trials", responses=NOT_FOUND)
def get_trials(
    sweep_id: int,
    session: SessionDep,
    settings: SettingsDep,
    optimizer: str | None = None,
    status: TrialStatus | None = None,
    sort: TrialSort = "number",
    order: Annotated[
        Literal["asc", "desc"] | None,
        Query(description="Default: number ascending, objectives best first."),
    ] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> TrialPage:
    """A sweep's trials, filtered by optimizer family and status, sorted, a page at a time."""
    sweep = repository.get_sweep(session, sweep_id)
    if optimizer is not None and optimizer not in OPTIMIZERS:
        valid = ", ".join(OPTIMIZERS)
        raise InputError(
            f"optimizer: unknown optimizer {short_repr(optimizer)} (valid: {valid})",
            loc=("query", "optimizer"),
        )
    if order is None:
        maximize = repository.stored_spec(sweep).objective.mode == "max"
        order = "desc" if sort != "number" and maximize else "asc"
    trials, next_cursor = list_trials(
        session,
        sweep_id=sweep_id,
        optimizer=optimizer,
        status=status,
        sort=sort,
        descending=order == "desc",
        limit=limit,
        cursor=cursor,
    )
    return TrialPage(
        items=[trial_read(trial, checkpoint_dir=settings.checkpoint_dir) for trial in trials],
        next_cursor=next_cursor,
    )


@router.get("/{sweep_id}/leaderboard", responses=NOT_FOUND)
def get_leaderboard(sweep_id: int, session: SessionDep, settings: SettingsDep) -> Leaderboard:
    """The best trial of each optimizer family (completed or stopped, finite objective)."""
    sweep = repository.get_sweep(session, sweep_id)
    return leaderboard_read(session, sweep, checkpoint_dir=settings.checkpoint_dir)


Tolerance = Annotated[
    float,
    Query(
        gt=0,
        lt=1,
        description="Relative: configurations within tolerance x |best| of a family's best "
        "objective are in its learning-rate basin.",
    ),
]


@router.get("/{sweep_id}/report", responses=NOT_FOUND)
def get_report(
    sweep_id: int, session: SessionDep, tolerance: Tolerance = DEFAULT_TOLERANCE
) -> OptimizerReport:
    """Per family: its best configuration, its learning-rate basin and how wide it is, where
    it diverged, and one sentence a person can act on."""
    sweep = repository.get_sweep(session, sweep_id)
    return optimizer_report(session, sweep, tolerance=tolerance)
