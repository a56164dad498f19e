"""Use cases for sweeps, shared by the API, the dashboard (through the API) and the CLI."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from service.controller.expand import expand, sweep_size
from service.sweeps import repository
from service.sweeps.models import Sweep
from service.sweeps.schemas import ResourcesSpec, SweepCreate


def checked_size(spec: SweepCreate, *, max_trials: int) -> int:
    """Check what the schema alone cannot (the workload and its metrics, the scheduler, the
    grid, the trial budget; SpecError naming the field) and count the sweep's trials."""
    return sweep_size(spec, expand(spec, max_trials=max_trials))


def submit_sweep(
    session: Session,
    spec: SweepCreate,
    *,
    max_trials: int,
    feasible: Callable[[ResourcesSpec], None] | None = None,
    claimed_by: str | None = None,
) -> Sweep:
    """Check a sweep in full and queue it (PENDING; ``claimed_by`` hands it to one controller);
    ``feasible`` raises SpecError when no node of the cluster can hold one of its trials.
    Nothing is written for a rejected sweep."""
    size = checked_size(spec, max_trials=max_trials)
    if feasible is not None:
        feasible(spec.resources)
    return repository.create_sweep(session, spec=spec, num_trials=size, claimed_by=claimed_by)
