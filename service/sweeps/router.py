"""/sweeps: submit, list, inspect and cancel sweeps; their trials, leaderboard and report."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from optisweep.optimizers import OPTIMIZERS
from optisweep.optimizers.schemas import short_repr
from optisweep.service import idempotency
from optisweep.service.accounts.access import (
    Principal,
    default_project,
    project_named,
    require_role,
    visible_projects,
)
from optisweep.service.accounts.auth import PrincipalDep, audit
from optisweep.service.accounts.models import Project, Role
from optisweep.service.code.router import ProjectQuery, package_in
from optisweep.service.deps import ControllerDep, SessionDep, SettingsDep
from optisweep.service.errors import InputError, SpecError
from optisweep.service.idempotency import Claim, IdempotencyKey, body_hash
from optisweep.service.pagination import decode_cursor, encode_cursor
from optisweep.service.routing import CONFLICT, FORBIDDEN, NOT_FOUND, TOO_LARGE, StrictRoute
from optisweep.service.sweeps import reopen, repository
from optisweep.service.sweeps.models import Sweep, SweepStatus
from optisweep.service.sweeps.report import DEFAULT_TOLERANCE, OptimizerReport, optimizer_report
from optisweep.service.sweeps.schemas import (
    ExtendRequest,
    RerunRequest,
    SweepCreate,
    SweepPage,
    SweepRead,
    SweepRerun,
)
from optisweep.service.sweeps.service import submit_sweep
from optisweep.service.sweeps.views import best_of, leaderboard_read, sweep_read
from optisweep.service.trials.models import TrialState
from optisweep.service.trials.repository import (
    TrialSort,
    list_sweep_metrics,
    list_trials,
    trial_by_number,
)
from optisweep.service.trials.schemas import (
    Leaderboard,
    MetricPage,
    MetricPoint,
    TrialPage,
    TrialRead,
    trial_read,
)
from optisweep.service.yaml_spec import dump_spec_text

router = APIRouter(prefix="/sweeps", tags=["sweeps"], route_class=StrictRoute)

Limit = Annotated[int, Query(ge=1, le=1000, description="Page size.")]
Cursor = Annotated[str | None, Query(description="next_cursor of the previous page.")]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=SweepRead,
    responses={**TOO_LARGE, **FORBIDDEN},
)
def create_sweep(
    spec: SweepCreate,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    controller: ControllerDep,
    principal: PrincipalDep,
    project: ProjectQuery = None,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Submit a sweep to a project (member role); it is checked in full (a 422 names the
    field) and queued, or not written. With an Idempotency-Key, a repeat gets this answer."""
    claim = None
    if idempotency_key is not None:
        digest = body_hash(f"{project}\n{spec.model_dump_json()}".encode())
        begun = idempotency.begin(
            session,
            user_id=principal.user_id,
            route="POST /sweeps",
            key=idempotency_key,
            digest=digest,
        )
        if not isinstance(begun, Claim):
            return begun
        claim = begun
    try:
        found = _target_project(session, principal, project, spec)
        sweep = submit_sweep(
            session,
            spec,
            max_trials=settings.max_trials,
            largest_node=controller.largest_node if controller is not None else None,
            inspect=controller.inspect if controller is not None else None,
            code_store=request.app.state.code_store,
            project_id=found.id,
            created_by=principal.user_id,
        )
        audit(
            session,
            request,
            principal,
            "sweep.submit",
            f"sweep {sweep.id} ({sweep.name}, {sweep.num_trials} trials)",
            project_id=found.id,
        )
        body = sweep_read(sweep, {}).model_dump(mode="json")
        headers = {"Location": str(request.url_for("get_sweep", sweep_id=sweep.id))}
        if claim is not None:
            idempotency.finish(session, claim, status_code=201, body=body, headers=headers)
        session.commit()
    except BaseException:
        if claim is not None:
            idempotency.abandon(request.app.state.sessions, claim)
        raise
    if controller is not None:
        controller.wake()
    return JSONResponse(body, status_code=status.HTTP_201_CREATED, headers=headers)


def _target_project(
    session: Session, principal: Principal, project: str | None, spec: SweepCreate
) -> Project:
    """The project a sweep is submitted to, once the principal may submit there and its code
    package (if any) was uploaded there."""
    found = (
        project_named(session, principal, project)
        if project is not None
        else default_project(session, principal)
    )
    require_role(session, principal, found.id, Role.MEMBER, hidden=f"project {project!r} not found")
    package = spec.code.package if spec.code is not None else None
    if package is not None and not package_in(session, found.id, package):
        raise SpecError(
            f"no uploaded package {package[:16]}... in project {found.name!r}: upload it there "
            "with POST /api/v1/code",
            field="code.package",
        )
    return found


@router.get("")
def list_sweeps(
    session: SessionDep,
    principal: PrincipalDep,
    status: SweepStatus | None = None,
    project: Annotated[str | None, Query(description="Only this project's sweeps.")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> SweepPage:
    """The sweeps of the projects the signed-in user is in, newest first, optionally only those
    in one status or one project."""
    before_id = None
    if cursor is not None:
        (before_id,) = decode_cursor(cursor, kinds=("id",))
    projects = (
        [project_named(session, principal, project).id]
        if project is not None
        else visible_projects(session, principal)
    )
    sweeps = repository.list_sweeps(
        session, status=status, limit=limit + 1, before_id=before_id, project_ids=projects
    )
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


@router.get(
    "/{sweep_id}/spec.yaml",
    response_class=Response,  # no media type of its own: the errors stay documented as JSON
    responses={**NOT_FOUND, 200: {"content": {"text/yaml": {}}, "description": "Its spec."}},
)
def get_spec_yaml(sweep_id: int, session: SessionDep) -> Response:
    """The sweep's spec as it was stored at submission, as YAML (``optisweep submit`` takes
    it back)."""
    sweep = repository.get_sweep(session, sweep_id)
    return Response(dump_spec_text(sweep.spec), media_type="text/yaml")


@router.post("/{sweep_id}/cancel", responses={**NOT_FOUND, **CONFLICT, **FORBIDDEN})
def cancel_sweep(
    sweep_id: int,
    request: Request,
    session: SessionDep,
    controller: ControllerDep,
    principal: PrincipalDep,
) -> SweepRead:
    """Cancel a pending or running sweep (409 if it already finished); running trials stop.
    Members cancel the sweeps they submitted, owners any of their project's."""
    sweep = repository.cancel_sweep(session, sweep_id)
    return _changed(session, request, principal, controller, sweep, "sweep.cancel")


def _changed(
    session: Session,
    request: Request,
    principal: Principal,
    controller: ControllerDep,
    sweep: Sweep,
    action: str,
    detail: str = "",
) -> SweepRead:
    """A change to a sweep made: audited (``detail`` after the sweep's id and name),
    committed, the controller woken; the sweep now."""
    text = f"sweep {sweep.id} ({sweep.name}){detail}"
    audit(session, request, principal, action, text, project_id=sweep.project_id)
    session.commit()
    if controller is not None:
        controller.wake()
    return sweep_read(sweep, repository.trial_counts(session, [sweep.id]).get(sweep.id, {}))


@router.post("/{sweep_id}/extend", responses={**NOT_FOUND, **CONFLICT, **FORBIDDEN, **TOO_LARGE})
def extend_sweep(
    sweep_id: int,
    body: ExtendRequest,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    controller: ControllerDep,
    principal: PrincipalDep,
) -> SweepRead:
    """Give a running or finished sweep more trials (a random search draws on from its seed,
    an adaptive one is asked for more; a grid is a 422, a cancelled sweep a 409). Who may
    cancel a sweep may extend it."""
    sweep = reopen.extend_sweep(
        session, sweep_id, trials=body.trials, max_trials=settings.max_trials
    )
    detail = f" by {body.trials}, to {sweep.num_trials} trials"
    return _changed(session, request, principal, controller, sweep, "sweep.extend", detail)


@router.post("/{sweep_id}/rerun", responses={**NOT_FOUND, **CONFLICT, **FORBIDDEN, **TOO_LARGE})
def rerun_sweep(
    sweep_id: int,
    body: RerunRequest,
    request: Request,
    session: SessionDep,
    controller: ControllerDep,
    principal: PrincipalDep,
) -> SweepRerun:
    """Train a finished sweep's failed (``failed``) and or early-stopped (``stopped``) trials
    again, each from its last checkpoint (409 while it runs). Who may cancel a sweep may
    rerun its trials."""
    which = [name for name in reopen.RERUNNABLE if getattr(body, name)]
    if not which:
        raise SpecError("nothing to rerun: set failed or stopped (or both) to true", field="failed")
    sweep, count = reopen.rerun_trials(session, sweep_id, which=which)
    detail = f": {count} {' and '.join(which)} trials"
    read = _changed(session, request, principal, controller, sweep, "sweep.rerun", detail)
    return SweepRerun(sweep=read, rerun=count)


@router.get("/{sweep_id}/trials", responses=NOT_FOUND)
def get_trials(
    sweep_id: int,
    session: SessionDep,
    settings: SettingsDep,
    optimizer: str | None = None,
    status: TrialState | None = None,
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


@router.get("/{sweep_id}/trials/{number}", responses=NOT_FOUND)
def get_trial_by_number(
    sweep_id: int, number: int, session: SessionDep, settings: SettingsDep
) -> TrialRead:
    """Trial ``number`` of the sweep: the number the leaderboard, the report and the CLI show
    (its ``id`` is the same trial's under /trials)."""
    repository.get_sweep(session, sweep_id)  # a sweep the caller may not see is a 404
    trial = trial_by_number(session, sweep_id, number)
    return trial_read(trial, checkpoint_dir=settings.checkpoint_dir)


MetricLimit = Annotated[int, Query(ge=1, le=10_000, description="Metric values per page.")]


@router.get("/{sweep_id}/metrics", responses=NOT_FOUND)
def get_metrics(
    sweep_id: int,
    session: SessionDep,
    name: Annotated[str | None, Query(max_length=64, description="Only this metric.")] = None,
    limit: MetricLimit = 10_000,
    cursor: Cursor = None,
) -> MetricPage:
    """Every metric value of the sweep's trials (trial, metric, epoch, value), a page at a
    time in the order they were recorded: the learning curves of a whole sweep in a few
    requests."""
    repository.get_sweep(session, sweep_id)
    metrics, next_cursor = list_sweep_metrics(
        session, sweep_id=sweep_id, name=name, limit=limit, cursor=cursor
    )
    return MetricPage(
        items=[MetricPoint.model_validate(metric) for metric in metrics], next_cursor=next_cursor
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
