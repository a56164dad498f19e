"""Use cases for sweeps, shared by the API, the dashboard (through the API) and the CLI."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from optisweep.service.code.store import CodeStore
from optisweep.service.controller.expand import expand, packing_note, sweep_size
from optisweep.service.errors import SpecError
from optisweep.service.sweeps import repository
from optisweep.service.sweeps.fits import check_batch_fits, needs_train_size
from optisweep.service.sweeps.models import Sweep
from optisweep.service.sweeps.schemas import ResourcesSpec, SweepCreate
from optisweep.workers.specs import WorkloadReport

Inspect = Callable[[SweepCreate], WorkloadReport]
"""Asks a worker about a sweep's workload (``Controller.inspect``)."""


def checked_size(
    spec: SweepCreate, *, max_trials: int, report: WorkloadReport | None = None
) -> int:
    """Check what the schema alone cannot (the workload and its metrics, the scheduler, the
    grid, the trial budget; SpecError naming the field) and count the sweep's trials."""
    return sweep_size(spec, expand(spec, max_trials=max_trials, report=report))


def check_code(spec: SweepCreate, store: CodeStore | None, *, local: bool = False) -> None:
    """The sweep's code package was uploaded (SpecError naming ``code.package`` if not); a
    directory (``code.path``) only where the caller hands it to Ray itself (``local``)."""
    code = spec.code
    if code is None:
        return
    if code.path is not None and not local:
        raise SpecError(
            "a directory is for the CLI (optisweep submit zips and uploads it): upload the "
            "code with POST /api/v1/code and give its id as code.package",
            field="code.path",
        )
    if code.package is not None and (store is None or store.get(code.package) is None):
        raise SpecError(
            f"no uploaded package {code.package[:16]}...: upload it with POST /api/v1/code",
            field="code.package",
        )


def submit_sweep(
    session: Session,
    spec: SweepCreate,
    *,
    max_trials: int,
    feasible: Callable[[ResourcesSpec], None] | None = None,
    inspect: Inspect | None = None,
    code_store: CodeStore | None = None,
    local_code: bool = False,
    claimed_by: str | None = None,
    project_id: int | None = None,
    created_by: int | None = None,
) -> Sweep:
    """Check a sweep in full and queue it (PENDING; ``claimed_by`` hands it to one controller).

    ``feasible`` raises SpecError when no node of the cluster can hold one of its trials;
    ``inspect`` checks a user's workload (``workload.entrypoint``) on a worker, under the
    sweep's code. The sweep goes to ``project_id`` (None: ``default``). Nothing is written
    for a rejected sweep.
    """
    check_code(spec, code_store, local=local_code)
    size = checked_size(spec, max_trials=max_trials)  # what needs no worker first: it is quick
    report = None
    if spec.workload.entrypoint is not None:
        if inspect is None:
            raise SpecError(
                "a user's workload is checked on a worker, and this server runs none",
                field="workload.entrypoint",
            )
        report = inspect(spec)
    elif inspect is not None and needs_train_size(spec):
        # Searched batch sizes and per-step warm-ups must fit the training set and the run,
        # whose sizes a worker finds out by building the workload (a plain
        # workload.batch_size is capped by the loop instead).
        report = inspect(spec)
    if report is not None:  # what only a worker could say: the workload, its data
        check_batch_fits(spec, report)
        size = checked_size(spec, max_trials=max_trials, report=report)
    if feasible is not None:
        feasible(spec.resources)
    note = packing_note(spec, report)
    return repository.create_sweep(
        session,
        spec=spec,
        num_trials=size,
        claimed_by=claimed_by,
        packing=note,
        project_id=project_id if project_id is not None else repository.default_project_id(session),
        created_by=created_by,
    )
