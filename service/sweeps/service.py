"""Use cases for sweeps, shared by the API, the dashboard (through the API) and the CLI."""

from __future__ import annotations

from sqlalchemy.orm import Session

from optisweep.service.code.store import CodeStore
from optisweep.service.sweeps import repository
from optisweep.service.sweeps.expansion import trial_rows
from optisweep.service.sweeps.models import Sweep
from optisweep.service.sweeps.schemas import SweepCreate
from optisweep.service.sweeps.validation import Capacity, Inspect, check_sweep
from optisweep.service.sweeps.warm_start import check_warm_start, earlier_trials
from optisweep.service.trials.queue import insert_trials


def submit_sweep(
    session: Session,
    spec: SweepCreate,
    *,
    max_trials: int,
    largest_node: Capacity | None = None,
    inspect: Inspect | None = None,
    code_store: CodeStore | None = None,
    local_code: bool = False,
    claimed_by: str | None = None,
    project_id: int | None = None,
    created_by: int | None = None,
) -> Sweep:
    """Check a sweep in full (``validation.check_sweep``) and queue it (PENDING, with its
    trials where a grid or random search lists them; ``claimed_by`` hands it to one
    controller). The sweep goes to ``project_id`` (None: ``default``). Nothing is written for
    a rejected sweep.
    """
    project_id = project_id if project_id is not None else repository.default_project_id(session)
    check_warm_start(session, spec, project_id=project_id)
    checked = check_sweep(
        spec,
        max_trials=max_trials,
        inspect=inspect,
        largest_node=largest_node,
        code_store=code_store,
        local_code=local_code,
        earlier=earlier_trials(session, spec),
    )
    sweep = repository.create_sweep(
        session,
        spec=spec,
        num_trials=checked.num_trials,
        claimed_by=claimed_by,
        packing=checked.packing,
        project_id=project_id,
        created_by=created_by,
    )
    insert_trials(session, trial_rows(sweep.id, spec, checked.suggestions))
    return sweep
