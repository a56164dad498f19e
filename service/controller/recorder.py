"""The recorder: what workers reported and how tasks ended, written to the database.

Events come from the inbox at least once and are acknowledged only after the transaction
that writes them commits; every write is idempotent, so writing a batch again changes nothing.
Searchers and schedulers hear of ended trials only after that commit.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import ray
from ray.exceptions import RayError
from sqlalchemy.orm import Session

from optisweep.service.controller.faults import Faults, cannot_pass_on_retry, describe
from optisweep.service.controller.inbox import MAX_BATCH, EpochReport, Exploited, Started
from optisweep.service.controller.state import (
    ControllerState,
    Ended,
    InFlight,
    start_over,
)
from optisweep.service.db.base import utcnow
from optisweep.service.sweeps.search_spec import ObjectiveSpec
from optisweep.service.trials.models import (
    FamilyImprovement,
    FamilyTally,
    Trial,
    TrialState,
    note_status,
)
from optisweep.service.trials.queue import trials_by_id
from optisweep.service.trials.repository import (
    RANKED,
    best_metric,
    delete_metrics,
    record_many_metrics,
)
from optisweep.workers.specs import TaskResult

logger = logging.getLogger(__name__)


def _is_better(value: float, than: float | None, *, objective: ObjectiveSpec) -> bool:
    if than is None or math.isnan(than):
        return True
    return value > than if objective.mode == "max" else value < than


def _better(value: float | None, other: float | None, mode: str) -> float | None:
    """The better of two finite values in direction ``mode`` (either, where one is missing)."""
    finite = [v for v in (value, other) if v is not None and math.isfinite(v)]
    if not finite:
        return value
    return max(finite) if mode == "max" else min(finite)


def _summarised(
    session: Session, trial: Trial, objective: ObjectiveSpec, metrics: dict[str, float]
) -> tuple[float | None, tuple[float | None, ...]]:
    """A finished trial's objective and further objectives by its sweep's summary rule: the
    last epoch's values, or (``summary: best``, for a trial that ranks) each metric's best
    epoch, the last included."""
    last = metrics.get(objective.metric)
    also = tuple(metrics.get(other.metric) for other in objective.also)
    if objective.summary == "last" or trial.status not in RANKED:
        return last, also
    return _better(last, trial.best_objective, objective.mode), tuple(
        _better(value, best_metric(session, trial_id=trial.id, name=o.metric, mode=o.mode), o.mode)
        for o, value in zip(objective.also, also, strict=True)
    )


def _tally(
    session: Session, tallies: dict[tuple[int, str], FamilyTally], trial: Trial
) -> FamilyTally:
    """The trial's family tally (epochs spent, best so far), created at its first report."""
    key = (trial.sweep_id, trial.optimizer)
    tally = tallies.get(key)
    if tally is None:
        tally = session.get(FamilyTally, key)
        if tally is None:
            tally = FamilyTally(sweep_id=trial.sweep_id, optimizer=trial.optimizer, epochs_spent=0)
            session.add(tally)
        tallies[key] = tally
    return tally


def _exploited(trial: Trial, event: Exploited, source: Trial | None) -> None:
    """PBT: the trial took another's state, its settings (schedule, clipping: exploring
    perturbs only hyperparameters) and these hyperparameters (recorded once)."""
    trial.hyperparameters = event.hyperparameters
    if source is not None:
        trial.settings = source.settings
    history = {
        "epoch": event.epoch,
        "source_trial_id": event.source_trial_id,
        "source_trial": None if source is None else source.number,  # as users name it
        "hyperparameters": event.hyperparameters,
    }
    if history not in (trial.hyperparameter_history or []):  # redelivered: once
        trial.hyperparameter_history = [*(trial.hyperparameter_history or []), history]


def _started(trial: Trial, event: Started) -> None:
    """An attempt began: where, and after which epoch it continues."""
    if trial.status == TrialState.PENDING:
        trial.status = TrialState.RUNNING
    trial.attempt = event.attempt
    trial.started_at = event.at
    trial.node_id = event.node_id
    trial.device = event.device
    trial.pack_id = event.pack_id
    where = f"on node {event.node_id[:12]}, {event.device}"
    if event.pack_id is not None:
        where += f", in pack {event.pack_id}"
    if event.resumed_epoch:
        where += f", resumed after epoch {event.resumed_epoch}"
    note_status(trial, where, at=trial.started_at)


class Recorder:
    """Writes each tick's events and results in one transaction, then lets them go."""

    def __init__(self, state: ControllerState, faults: Faults) -> None:
        self.state = state
        self.faults = faults
        self._results: list[tuple[int, int, int, float]] = []
        """This tick's (sweep, trial number, epoch, objective) reports, for searchers."""

    def record(self, finished: list[ray.ObjectRef[Any]]) -> None:
        """Write the inbox's pending events and the ended tasks' results in one transaction;
        only after it commits are the events acknowledged and the tasks let go."""
        last, events = (
            (0, []) if self.state.inbox is None else ray.get(self.state.inbox.pending.remote())
        )
        if last and len(events) >= MAX_BATCH:
            finished = []  # a task's last reports may be in the next batch: end it after those
        if not events and not finished:
            return
        ended: list[Ended] = []
        self._results = []
        with self.state.sessions.begin() as session:
            self._apply_events(session, events)
            self._apply_results(session, finished, ended)
        if last:
            self.state.inbox.ack.remote(last)  # ordered before this controller's next pending()
        for ref in finished:
            for trial_id, _ in self.state.in_flight.pop(ref).trials:
                self.state.by_trial.pop(trial_id, None)
        for sweep_id, number, epoch, value in self._results:
            searcher = self.state.searchers.get(sweep_id)
            if searcher is not None:
                with self.faults.isolated(sweep_id, "telling its searcher"):
                    searcher.on_result(number, epoch, value)
        for end in ended:
            with self.faults.isolated(end.sweep_id, "telling its searcher"):
                self._tell(end)

    def _apply_events(
        self, session: Session, events: Iterable[Started | EpochReport | Exploited]
    ) -> None:
        """Starts, epochs (metrics, best objective, family tallies) and PBT exploits."""
        events = [e for e in events if self.state.by_trial.get(e.trial_id) == e.attempt]
        if not events:
            return
        trials = trials_by_id(session, (e.trial_id for e in events))
        sources = trials_by_id(
            session, (e.source_trial_id for e in events if isinstance(e, Exploited))
        )
        epochs: dict[int, list[tuple[int, dict[str, float]]]] = defaultdict(list)
        tallies: dict[tuple[int, str], FamilyTally] = {}
        self._forget_after(session, trials, [e for e in events if isinstance(e, Started)])
        for event in events:
            trial = trials[event.trial_id]
            if isinstance(event, Exploited):
                _exploited(trial, event, sources.get(event.source_trial_id))
            elif isinstance(event, Started):
                _started(trial, event)
            else:
                epochs[trial.id].append((event.epoch, event.metrics))
                self._epoch(session, trial, event, tallies)
        record_many_metrics(
            session,
            (
                (trial_id, step, metrics)
                for trial_id, rows in epochs.items()
                for step, metrics in rows
            ),
        )

    def _epoch(
        self,
        session: Session,
        trial: Trial,
        event: EpochReport,
        tallies: dict[tuple[int, str], FamilyTally],
    ) -> None:
        """An epoch's effect on its trial (epochs run, checkpoint, best objective) and on its
        family's tally (epochs spent, best so far), counted once however often it arrives."""
        ran_before = trial.epochs_run or 0
        trial.epochs_run = max(ran_before, event.epoch)
        if event.checkpoint is not None:
            trial.checkpoint_path = event.checkpoint
            trial.checkpoint_epoch = event.epoch
        objective = self.state.specs[trial.sweep_id].objective
        found = event.metrics.get(objective.metric)
        value = found if found is not None and math.isfinite(found) else None
        if value is not None:
            self._results.append((trial.sweep_id, trial.number, event.epoch, value))
        if value is not None and _is_better(value, trial.best_objective, objective=objective):
            trial.best_objective = value
        if event.epoch <= ran_before:  # the re-report of a checkpoint's epoch
            return
        tally = _tally(session, tallies, trial)
        tally.epochs_spent += event.epoch - ran_before
        if value is not None and _is_better(value, tally.best_value, objective=objective):
            tally.best_value, tally.best_trial_id = value, trial.id
            session.add(
                FamilyImprovement(
                    sweep_id=trial.sweep_id,
                    optimizer=trial.optimizer,
                    epochs_spent=tally.epochs_spent,
                    value=value,
                    trial_id=trial.id,
                    epoch=event.epoch,
                )
            )

    def _forget_after(
        self, session: Session, trials: dict[int, Trial], started: list[Started]
    ) -> None:
        """Attempts that began: forget what earlier attempts recorded after their start epoch.

        An attempt continues after its checkpoint's epoch (0 when from scratch); the epochs
        after it run again, so their metrics and the best objective among them go.
        """
        by_epoch: dict[int, list[int]] = defaultdict(list)
        for event in started:
            by_epoch[event.resumed_epoch].append(event.trial_id)
        for epoch, trial_ids in by_epoch.items():
            # only trials that recorded epochs after it have metrics to forget (a first
            # attempt has none: its start costs no search of the metrics table)
            recorded = [t for t in trial_ids if (trials[t].epochs_run or 0) > epoch]
            delete_metrics(session, trial_ids=recorded, after_step=epoch)
            for trial_id in trial_ids:
                trial = trials[trial_id]
                trial.epochs_run = min(trial.epochs_run or 0, epoch)
                if epoch == 0:
                    trial.best_objective = None
                    trial.checkpoint_path = trial.checkpoint_epoch = None
                    continue
                objective = self.state.specs[trial.sweep_id].objective
                trial.best_objective = best_metric(
                    session, trial_id=trial_id, name=objective.metric, mode=objective.mode
                )

    def _apply_results(
        self, session: Session, finished: Iterable[ray.ObjectRef[Any]], ended: list[Ended]
    ) -> None:
        """Write how the tasks in ``finished`` ended; ``ended`` gets what to tell searchers."""
        now = utcnow()
        for ref in finished:
            flight = self.state.in_flight[ref]
            try:
                task: TaskResult | None = ray.get(ref)
                error = None
            except RayError as exc:
                task, error = None, describe(exc, self.state.checkpoint_dir)
            objective = self.state.specs[flight.sweep_id].objective
            cancelled = flight.sweep_id not in self.state.active
            for index, (trial_id, attempt) in enumerate(flight.trials):
                trial = session.get(Trial, trial_id)
                if trial is None:  # its sweep was deleted meanwhile
                    continue
                trial.attempt = attempt
                if task is None:
                    self._attempt_failed(session, trial, flight, attempt, str(error), ended)
                    continue
                result = task.results[index]
                trial.status = result.status
                stopped = cancelled and result.status == TrialState.STOPPED
                if stopped and not result.epochs_run:
                    trial.status = TrialState.CANCELLED  # stopped before its first epoch
                trial.objective, also = _summarised(session, trial, objective, result.metrics)
                trial.device = result.device
                trial.node_id = task.node_id
                trial.error = "sweep cancelled" if stopped else None
                trial.finished_at = now
                note_status(trial, trial.error or f"after epoch {result.epochs_run}", at=now)
                self._ended(session, trial, ended, also)

    def _attempt_failed(
        self,
        session: Session,
        trial: Trial,
        flight: InFlight,
        attempt: int,
        message: str,
        ended: list[Ended],
    ) -> None:
        spec = self.state.specs[flight.sweep_id]
        # an error the code raises before its first epoch ends, on every try: not retried
        certain = cannot_pass_on_retry(message) and not trial.epochs_run
        if certain:
            message = f"{message}\n\n(not retried: the same code fails this way on every try)"
        retry = attempt <= spec.resources.max_failures and not certain
        if flight.sweep_id in self.state.active and retry:
            logger.warning("trial %s attempt %s failed: %s", trial.id, attempt, message)
            trial.error = f"attempt {attempt} failed: {message}"
            start_over([trial], trial.error)
            return
        trial.status = TrialState.FAILED
        trial.error = message
        trial.finished_at = utcnow()
        note_status(trial, message, at=trial.finished_at)
        self._ended(session, trial, ended)

    def _ended(
        self,
        session: Session,
        trial: Trial,
        ended: list[Ended],
        also: tuple[float | None, ...] = (),
    ) -> None:
        """Note, for after the commit, what the trial's searcher and scheduler are to hear
        (``also``: the final values of the sweep's further objectives)."""
        if trial.status.is_told() and trial.sweep_id in self.state.specs:
            ended.append(
                Ended(trial.sweep_id, trial.id, trial.number, trial.status, trial.objective, also)
            )

    def _tell(self, end: Ended) -> None:
        """Tell the sweep's searcher and scheduler how a trial ended (after it is recorded)."""
        searcher = self.state.searchers.get(end.sweep_id)
        if searcher is not None:
            searcher.on_complete(end.number, end.outcome, end.objective, end.also)
        spec = self.state.specs.get(end.sweep_id)
        if spec is not None and spec.search.pruner is not None:
            self.state.inbox.finished.remote(end.trial_id, end.outcome, end.objective)
