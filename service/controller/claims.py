"""Claims: which sweeps this controller runs, and taking a sweep on (after a restart too).

A controller claims sweeps (``sweeps.claimed_by``) and renews the claim with a heartbeat; the
server's controller is always called ``service`` and takes its own sweeps back at once after a
restart, while a claim of a controller that stopped heartbeating (say an ``optisweep run`` that
was killed) can be taken over after the lease. Adopting a sweep rebuilds what the controller
holds in memory for it from the database alone.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import ray
from sqlalchemy.orm import Session

from optisweep.service.controller.faults import Faults
from optisweep.service.controller.range_tests import RangeTests
from optisweep.service.controller.state import ControllerState, start_over
from optisweep.service.db.base import utcnow
from optisweep.service.search import Searcher, StoredTrial
from optisweep.service.sweeps.expansion import expand, resolve_lr, trial_rows
from optisweep.service.sweeps.models import Sweep, SweepStatus
from optisweep.service.sweeps.repository import (
    claim_sweeps,
    start_sweep,
    stop_abandoned,
    stored_spec,
)
from optisweep.service.sweeps.schemas import SweepCreate
from optisweep.service.sweeps.search_spec import ADAPTIVE
from optisweep.service.sweeps.warm_start import earlier_trials
from optisweep.service.trials.queue import (
    count_trials,
    insert_trials,
    interrupted_trials,
    sweep_trials,
)
from optisweep.service.trials.repository import final_metrics, metric_curves

logger = logging.getLogger(__name__)


class Claims:
    """Claims and renews sweeps, adopts the new ones, releases the ones it lost."""

    def __init__(
        self,
        state: ControllerState,
        faults: Faults,
        range_tests: RangeTests,
        *,
        controller_id: str,
        lease: timedelta,
        only_sweep: int | None,
    ) -> None:
        self.state = state
        self.faults = faults
        self.range_tests = range_tests
        self.controller_id = controller_id
        self.lease = lease
        self.only_sweep = only_sweep
        self.recovered = False
        """Whether this controller has stopped what abandoned sweeps left open (once)."""

    def claim(self) -> None:
        """Claim (and heartbeat) sweeps; adopt the new and the stale; release the lost."""
        now = utcnow()
        stale = set(self.state.stale)
        with self.state.sessions.begin() as session:
            owned = claim_sweeps(
                session,
                controller_id=self.controller_id,
                now=now,
                lease=self.lease,
                only=self.only_sweep,
            )
            for sweep in owned:
                if sweep.id not in self.state.active or sweep.id in stale:
                    self._adopt_or_fail(session, sweep)
            if not self.recovered:
                stop_abandoned(session, controller_id=self.controller_id, now=now, lease=self.lease)
                self.recovered = True
        self.state.stale -= stale
        for sweep_id in self.state.active - {sweep.id for sweep in owned}:
            self.state.release(sweep_id)

    def _adopt_or_fail(self, session: Session, sweep: Sweep) -> None:
        """Adopt a sweep; one that cannot start fails alone, not the loop."""
        try:
            with session.begin_nested():
                self._adopt(session, sweep)
        except Exception as exc:
            self.faults.failed_to_start(session, sweep, exc)
        else:
            self.faults.counts.pop((sweep.id, "starting"), None)

    def _adopt(self, session: Session, sweep: Sweep) -> None:
        """Take a sweep on: recover trials a previous controller left running, expand if new."""
        spec = stored_spec(sweep)
        # lr: auto without a range test yet: run it, then expand (RangeTests.collect).
        ranging = spec.space.lr == "auto" and sweep.lr_range is None
        if spec.space.lr == "auto" and sweep.lr_range is not None:
            spec = resolve_lr(spec, sweep.lr_range)
        self._restart_interrupted(session, sweep.id)
        adaptive = spec.search.algorithm in ADAPTIVE
        if adaptive and not ranging:
            self.state.searchers[sweep.id] = self._restored_searcher(session, sweep, spec)
        if sweep.status == SweepStatus.PENDING:
            num_trials = None
            if not count_trials(session, sweep_id=sweep.id) and not adaptive and not ranging:
                # Submitting a sweep inserts its trials; one queued by an earlier version of
                # optisweep, which expanded sweeps here instead, still has none.
                earlier = earlier_trials(session, spec, before=sweep.created_at)
                suggestions = expand(spec, max_trials=self.state.max_trials, earlier=earlier)
                insert_trials(session, trial_rows(sweep.id, spec, suggestions))
                num_trials = len(suggestions)
            if not start_sweep(session, sweep.id, num_trials=num_trials):
                return  # cancelled meanwhile
        self.state.specs[sweep.id] = spec
        self.state.active.add(sweep.id)
        if spec.search.pruner is not None:
            self._schedule(session, sweep.id, spec)
        if ranging and sweep.id not in self.state.range_tests.values():
            self.range_tests.start(sweep.id, spec)
        if self.state.checkpoint_dir is not None:
            # Sweep ids repeat across databases; the creation time tells their sweeps apart.
            stamp = sweep.created_at.strftime("%Y%m%dT%H%M%S%f")
            root = self.state.checkpoint_dir / f"sweep-{sweep.id}-{stamp}"
            self.state.checkpoint_roots[sweep.id] = root

    def _restart_interrupted(self, session: Session, sweep_id: int) -> None:
        """Trials a previous controller left RUNNING go back to the queue."""
        orphans = interrupted_trials(session, sweep_id=sweep_id, in_flight=self.state.by_trial)
        for trial in orphans:
            # The attempt was interrupted, not failed: it starts again and does not count.
            trial.attempt = max(trial.attempt - 1, 0)
        start_over(orphans, "interrupted: the server stopped while it ran")
        if orphans:
            logger.info("sweep %s: %d interrupted trials start again", sweep_id, len(orphans))

    def _restored_searcher(self, session: Session, sweep: Sweep, spec: SweepCreate) -> Searcher:
        """The sweep's adaptive searcher, having seen the earlier sweeps it warm-starts from
        and every trial of its own stored so far."""
        sweep_id = sweep.id
        earlier = earlier_trials(session, spec, before=sweep.created_at)
        searcher = self.state.searcher_for(spec, earlier)
        others = [objective.metric for objective in spec.objective.also]
        finals = final_metrics(session, sweep_id=sweep_id, names=others) if others else {}
        searcher.restore(
            [
                StoredTrial(
                    t.number,
                    t.search_params or {},
                    t.status if t.status.is_told() else None,
                    t.objective,
                    tuple(finals.get(t.id, {}).get(name) for name in others),
                )
                for t in sorted(sweep_trials(session, sweep_id=sweep_id), key=lambda t: t.number)
            ]
        )
        return searcher

    def _schedule(self, session: Session, sweep_id: int, spec: SweepCreate) -> None:
        """Hand the sweep's early-stopping scheduler to the inbox, with the finished curves."""
        assert spec.search.pruner is not None
        finished = sweep_trials(session, sweep_id=sweep_id, ended=True)
        curves = metric_curves(
            session, trial_ids=[t.id for t in finished], name=spec.objective.metric
        )
        ray.get(
            self.state.inbox.schedule.remote(
                sweep_id,
                spec.search.pruner.model_dump(mode="json"),
                metric=spec.objective.metric,
                mode=spec.objective.mode,
                max_epochs=spec.workload.epochs,
                finished=[
                    (t.status, curves[t.id], t.objective) for t in finished if t.status.is_told()
                ],
            )
        )
