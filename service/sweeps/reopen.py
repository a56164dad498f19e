"""More of a sweep after the fact: more trials for a finished or running sweep (``extend``),
and its failed or stopped trials trained again from their checkpoints (``rerun``).

Both only write rows: the sweep goes back to RUNNING, unclaimed, and a controller adopts it as
after a restart (its searcher rebuilt from the stored trials), so an extended or rerun sweep
survives a server restart like any other, and every epoch is stored once (an attempt continues
after its checkpoint's epoch, and what the earlier attempt recorded after that is forgotten).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from optisweep.service.db.base import utcnow
from optisweep.service.errors import ConflictError, SpecError
from optisweep.service.search import GridError, StoredTrial, defaults_configurations, make_searcher
from optisweep.service.sweeps.expansion import at_sizes, resolve_lr, trial_rows
from optisweep.service.sweeps.models import Sweep, SweepStatus
from optisweep.service.sweeps.repository import get_sweep, stored_spec
from optisweep.service.sweeps.search_spec import ADAPTIVE
from optisweep.service.sweeps.warm_start import earlier_trials
from optisweep.service.trials.models import Trial, TrialState, note_status
from optisweep.service.trials.queue import insert_trials

RERUNNABLE = {"failed": TrialState.FAILED, "stopped": TrialState.STOPPED}
"""What ``rerun`` takes again: trials that failed, and trials stopped early."""


def _locked(session: Session, sweep_id: int) -> Sweep:
    """The sweep, its row locked until the transaction ends (PostgreSQL: two extends of one
    sweep queue; SQLite writes one at a time anyway)."""
    get_sweep(session, sweep_id)  # NotFoundError
    sweep = session.scalars(
        select(Sweep)
        .where(Sweep.id == sweep_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    if sweep.status == SweepStatus.CANCELLED:
        raise ConflictError(f"sweep {sweep_id} was cancelled: submit it again instead")
    return sweep


def _reopen(sweep: Sweep) -> None:
    """A finished sweep runs again: RUNNING, unclaimed, for a controller to adopt."""
    if sweep.status in (SweepStatus.COMPLETED, SweepStatus.FAILED):
        sweep.status = SweepStatus.RUNNING
        sweep.finished_at = None
        sweep.error = None
        sweep.claimed_by = None
    sweep.updated_at = utcnow()


def extend_sweep(session: Session, sweep_id: int, *, trials: int, max_trials: int) -> Sweep:
    """Give a sweep ``trials`` more configurations (each trained ``search.repeats`` times):
    an adaptive searcher is asked for them as it runs, a random search draws on from its
    seed (the draws it would have made next). SpecError for a grid or past ``max_trials``;
    ConflictError for a cancelled sweep, or one whose lr range test is still running."""
    sweep = _locked(session, sweep_id)
    spec = stored_spec(sweep)
    repeats = spec.search.repeats
    per_configuration = repeats * (len(spec.scale.values) if spec.scale is not None else 1)
    total = sweep.num_trials + trials * per_configuration
    if total > max_trials:
        raise SpecError(
            f"{sweep.num_trials} trials and {trials * per_configuration} more is {total}, "
            f"more than the maximum of {max_trials}",
            field="trials",
        )
    if spec.search.algorithm not in ADAPTIVE:
        if spec.space.lr == "auto":
            if sweep.lr_range is None:
                raise ConflictError(f"sweep {sweep_id}'s lr range test is still running")
            spec = resolve_lr(spec, sweep.lr_range)
        assert spec.search.num_trials is not None or spec.search.algorithm == "grid"
        configurations = sweep.num_trials // per_configuration
        extra = configurations - defaults_configurations(spec) - (spec.search.num_trials or 0)
        try:
            searcher = make_searcher(
                spec,
                max_trials=max_trials,
                earlier=earlier_trials(session, spec, before=sweep.created_at),
                extra=extra + trials,
            )
        except GridError as exc:  # the request's field: the sweep's spec is as it was
            raise SpecError(f"sweep {sweep_id} searches by grid: {exc}", field="trials") from None
        searcher.restore([StoredTrial(n, {}, None, None) for n in range(configurations)])
        more = [suggestion for _ in range(trials) if (suggestion := searcher.suggest())]
        repeated = [s for s in at_sizes(spec, more) for _ in range(repeats)]
        insert_trials(session, trial_rows(sweep.id, spec, repeated, first=sweep.num_trials))
    sweep.num_trials = total
    _reopen(sweep)
    session.flush()
    return sweep


def rerun_trials(session: Session, sweep_id: int, *, which: list[str]) -> tuple[Sweep, int]:
    """Train a finished sweep's failed (and or stopped) trials again, each from its last
    checkpoint, with a fresh budget of retries; the sweep and how many trials go again.
    ConflictError while the sweep runs (its searcher holds those trials' outcomes)."""
    sweep = _locked(session, sweep_id)
    if sweep.status in (SweepStatus.PENDING, SweepStatus.RUNNING):
        raise ConflictError(
            f"sweep {sweep_id} is still {sweep.status.value}: rerun its trials once it finished"
        )
    states = [RERUNNABLE[name] for name in which]
    again = list(
        session.scalars(select(Trial).where(Trial.sweep_id == sweep_id, Trial.status.in_(states)))
    )
    if not again:
        return sweep, 0
    for trial in again:
        trial.status = TrialState.PENDING
        trial.attempt = 0  # a fresh budget of retries; the attempt recorded before is history
        trial.error = None
        trial.started_at = None
        trial.finished_at = None
        note_status(trial, f"rerun ({trial.checkpoint_epoch or 0} epochs checkpointed)")
    _reopen(sweep)
    session.flush()
    return sweep, len(again)


__all__ = ["RERUNNABLE", "extend_sweep", "rerun_trials"]
