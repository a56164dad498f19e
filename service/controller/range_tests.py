"""Learning-rate range tests (``lr: auto``): one Ray task per sweep before its trials exist."""

from __future__ import annotations

import logging
from typing import Any

import ray
from ray.exceptions import RayError

from optisweep.service.controller.faults import Faults, describe
from optisweep.service.controller.state import ControllerState
from optisweep.service.db.base import utcnow
from optisweep.service.sweeps.expansion import expand, resolve_lr, trial_rows
from optisweep.service.sweeps.models import Sweep, SweepStatus
from optisweep.service.sweeps.repository import finish_sweep
from optisweep.service.sweeps.schemas import SweepCreate
from optisweep.service.sweeps.search_spec import ADAPTIVE
from optisweep.service.sweeps.warm_start import earlier_trials
from optisweep.service.trials.queue import insert_trials
from optisweep.workers.specs import RangeTestSpec
from optisweep.workers.tasks import run_range_test

logger = logging.getLogger(__name__)


class RangeTests:
    """Starts a sweep's range test and, once it ends, stores its bounds and expands."""

    def __init__(self, state: ControllerState, faults: Faults) -> None:
        self.state = state
        self.faults = faults

    def start(self, sweep_id: int, spec: SweepCreate) -> None:
        """Run the learning-rate range test of a sweep with ``lr: auto`` on the cluster."""
        task = ray.remote(max_retries=1)(run_range_test).options(
            num_cpus=spec.resources.cpus_per_trial,
            num_gpus=spec.resources.gpus_per_trial,
            **self.state.task_options(spec),
        )
        test = RangeTestSpec(
            workload=spec.workload.config(), optimizers=spec.space.lr_tuned(), seed=spec.search.seed
        )
        self.state.range_tests[task.remote(test)] = sweep_id
        logger.info("sweep %s: learning-rate range test started", sweep_id)

    def collect(self) -> None:
        """Sweeps whose range test finished: store the bounds, then expand or start searching."""
        if not self.state.range_tests:
            return
        refs = list(self.state.range_tests)
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        for ref in ready:
            sweep_id = self.state.range_tests.pop(ref)
            try:
                result: dict[str, Any] = ray.get(ref)
                error = None
            except RayError as exc:
                result, error = {}, describe(exc, self.state.checkpoint_dir)
            with self.faults.isolated(sweep_id, "starting after its lr range test"):
                self._range_tested(sweep_id, result, error)

    def _range_tested(self, sweep_id: int, result: dict[str, Any], error: str | None) -> None:
        """Store a sweep's lr range test and expand its trials (or fail it, with ``error``)."""
        with self.state.sessions.begin() as session:
            sweep = session.get(Sweep, sweep_id)
            if sweep is None or sweep_id not in self.state.active:
                return  # cancelled meanwhile
            if error is not None:
                message = f"lr range test failed: {error}"
                finish_sweep(session, sweep, SweepStatus.FAILED, at=utcnow(), error=message)
                self.state.active.discard(sweep_id)
                return
            sweep.lr_range = result
            spec = resolve_lr(self.state.specs[sweep_id], result)
            self.state.specs[sweep_id] = spec
            earlier = earlier_trials(session, spec, before=sweep.created_at)
            if spec.search.algorithm in ADAPTIVE:
                self.state.searchers[sweep_id] = self.state.searcher_for(spec, earlier)
            else:
                suggestions = expand(spec, max_trials=self.state.max_trials, earlier=earlier)
                insert_trials(session, trial_rows(sweep_id, spec, suggestions))
        bounds = {name: (r["low"], r["high"]) for name, r in result.items()}
        logger.info("sweep %s: lr bounds from the range test %s", sweep_id, bounds)
