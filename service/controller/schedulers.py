"""Early stopping: ASHA, Hyperband and the median rule, as Optuna's pruners over an in-memory study.

A scheduler lives in the controller's inbox actor, which sees every epoch report as it
arrives: it answers in the same call whether the trial goes on, so a stopped trial (or pack
member) never trains an epoch more than the algorithm allows. Its study is rebuilt from the
stored curves when a controller adopts a sweep.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from optisweep.workers.states import TrialState

if TYPE_CHECKING:  # imported where used: the inbox actor imports this module at its start
    import optuna

    from optisweep.service.sweeps.search_spec import SchedulerSpec


def make_pruner(spec: SchedulerSpec, *, max_epochs: int) -> optuna.pruners.BasePruner:
    """Optuna's pruner for a scheduler spec."""
    import optuna

    from optisweep.service.sweeps.search_spec import AshaSpec, HyperbandSpec, MedianSpec

    match spec:
        case AshaSpec():
            return optuna.pruners.SuccessiveHalvingPruner(
                min_resource=spec.grace_period,
                reduction_factor=spec.reduction_factor,
                min_early_stopping_rate=0,
            )
        case HyperbandSpec():
            return optuna.pruners.HyperbandPruner(
                min_resource=spec.min_epochs,
                max_resource=max_epochs,
                reduction_factor=spec.reduction_factor,
            )
        case MedianSpec():
            return optuna.pruners.MedianPruner(
                n_startup_trials=spec.min_trials, n_warmup_steps=spec.warmup_epochs
            )
    raise TypeError(f"not a scheduler spec: {spec!r}")


class Scheduler:
    """Decides after each epoch whether a trial goes on, from every trial's curve so far."""

    def __init__(self, spec: SchedulerSpec, *, mode: str, max_epochs: int) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._study = optuna.create_study(
            direction="maximize" if mode == "max" else "minimize",
            pruner=make_pruner(spec, max_epochs=max_epochs),
            sampler=optuna.samplers.RandomSampler(seed=0),
        )
        self._trials: dict[int, optuna.Trial] = {}
        self._reported: dict[int, set[int]] = {}

    def add(self, trial_id: int, curve: dict[int, float] | None = None) -> None:
        """A trial that trains (again): its curve so far, if it has one."""
        if trial_id in self._trials:
            return
        trial = self._study.ask()
        self._trials[trial_id] = trial
        self._reported[trial_id] = set()
        for epoch, value in sorted((curve or {}).items()):
            self._report(trial_id, epoch, value)

    def add_finished(
        self, outcome: TrialState, curve: dict[int, float], objective: float | None
    ) -> None:
        """A trial that ended before this scheduler existed (a restarted controller)."""
        from optuna.trial import TrialState as OptunaState
        from optuna.trial import create_trial

        finite = {e: v for e, v in curve.items() if math.isfinite(v)}
        if outcome == TrialState.COMPLETED and objective is not None and math.isfinite(objective):
            state, value = OptunaState.COMPLETE, objective
        elif outcome == TrialState.STOPPED:
            state, value = OptunaState.PRUNED, None
        else:
            state, value = OptunaState.FAIL, None
        self._study.add_trial(create_trial(state=state, value=value, intermediate_values=finite))

    def _report(self, trial_id: int, epoch: int, value: float) -> None:
        if epoch in self._reported[trial_id] or not math.isfinite(value):
            return  # a resumed attempt reports its checkpoint's epoch again
        self._reported[trial_id].add(epoch)
        self._trials[trial_id].report(value, epoch)

    def report(self, trial_id: int, epoch: int, value: float) -> bool:
        """Record one epoch's objective; True when the trial should stop now."""
        self.add(trial_id)
        fresh = epoch not in self._reported[trial_id]
        self._report(trial_id, epoch, value)
        return fresh and self._trials[trial_id].should_prune()

    def finish(self, trial_id: int, outcome: TrialState, objective: float | None) -> None:
        """A trial ended: completed trials set the bar for the median rule."""
        from optuna.trial import TrialState as OptunaState

        trial = self._trials.pop(trial_id, None)
        self._reported.pop(trial_id, None)
        if trial is None:
            return
        if outcome == TrialState.COMPLETED and objective is not None and math.isfinite(objective):
            self._study.tell(trial, objective)
        elif outcome == TrialState.STOPPED:
            self._study.tell(trial, state=OptunaState.PRUNED)
        else:
            self._study.tell(trial, state=OptunaState.FAIL)


def scheduler_from_dump(data: dict[str, Any], *, mode: str, max_epochs: int) -> Scheduler:
    """A scheduler from its spec as JSON (what crosses to the inbox actor)."""
    from pydantic import TypeAdapter

    from optisweep.service.sweeps.search_spec import SchedulerSpec

    spec: SchedulerSpec = TypeAdapter(SchedulerSpec).validate_python(data)
    return Scheduler(spec, mode=mode, max_epochs=max_epochs)
