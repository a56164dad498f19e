"""The inbox actor: workers report to it through Ray, the controller records it in batches.

Delivery is at least once: the controller reads what is pending, writes it in one database
transaction, and only once that transaction has committed acknowledges it, so a failed
transaction (a dropped connection, a database that is down) loses nothing; the next tick
writes the same events again. Every write they cause is idempotent.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from optisweep.service.controller.schedulers import Scheduler, scheduler_from_dump
from optisweep.service.db.base import utcnow
from optisweep.workers.states import TrialState


@dataclass(frozen=True)
class Started:
    """An attempt of a trial began on a node."""

    trial_id: int
    attempt: int
    node_id: str
    device: str
    pack_id: str | None = None
    resumed_epoch: int = 0
    """The attempt continues from a checkpoint of this epoch (0: from scratch)."""
    at: datetime = field(default_factory=utcnow)
    """When the inbox heard of it (the controller reads events in batches, later)."""


@dataclass(frozen=True)
class EpochReport:
    """An attempt of a trial finished an epoch with these metrics."""

    trial_id: int
    attempt: int
    epoch: int
    metrics: dict[str, float]
    checkpoint: str | None = None
    """The checkpoint written after this epoch, if one was."""


@dataclass(frozen=True)
class Exploited:
    """PBT: an attempt of a trial took another trial's state and these hyperparameters."""

    trial_id: int
    attempt: int
    epoch: int
    source_trial_id: int
    hyperparameters: dict[str, Any]


Event = Started | EpochReport | Exploited

MAX_BATCH = 20_000
"""The most events the controller writes in one transaction."""


class Inbox:
    """Keeps worker events until the controller has recorded them; tells workers when to stop.

    Runs as a Ray actor (zero CPUs) owned by the controller: workers hold no database
    connections, and every write happens in the controller, in batches.
    """

    def __init__(self) -> None:
        self._events: deque[tuple[int, Event]] = deque()
        """(sequence number, event), oldest first; numbers grow by one per event."""
        self._next = 1
        self._stop: set[int] = set()
        self._schedulers: dict[int, tuple[Scheduler, str]] = {}
        """Sweep id -> its early-stopping scheduler and the objective metric it watches."""
        self._sweep_of: dict[int, int] = {}
        """Trial id -> sweep id, for trials whose sweep has a scheduler."""

    def schedule(
        self,
        sweep_id: int,
        scheduler: dict[str, Any],
        *,
        metric: str,
        mode: str,
        max_epochs: int,
        finished: list[tuple[TrialState, dict[int, float], float | None]],
    ) -> None:
        """Stop a sweep's trials early with this scheduler, which learns from ``finished``
        (outcome, objective per epoch, final objective) of trials that ended already."""
        if sweep_id in self._schedulers:
            return
        instance = scheduler_from_dump(scheduler, mode=mode, max_epochs=max_epochs)
        for outcome, curve, objective in finished:
            instance.add_finished(outcome, curve, objective)
        self._schedulers[sweep_id] = (instance, metric)

    def track(self, sweep_id: int, trials: list[tuple[int, dict[int, float]]]) -> None:
        """Trials of a scheduled sweep about to train, with the curves they have so far."""
        if sweep_id not in self._schedulers:
            return
        scheduler, _ = self._schedulers[sweep_id]
        for trial_id, curve in trials:
            self._sweep_of[trial_id] = sweep_id
            scheduler.add(trial_id, curve)

    def finished(self, trial_id: int, outcome: TrialState, objective: float | None) -> None:
        """A tracked trial ended (completed trials set the median rule's bar)."""
        sweep_id = self._sweep_of.pop(trial_id, None)
        if sweep_id is not None and sweep_id in self._schedulers:
            self._schedulers[sweep_id][0].finish(trial_id, outcome, objective)

    def _should_stop(self, trial_id: int, epoch: int, metrics: dict[str, float]) -> bool:
        if trial_id in self._stop:
            return True
        sweep_id = self._sweep_of.get(trial_id)
        if sweep_id is None or sweep_id not in self._schedulers:
            return False
        scheduler, metric = self._schedulers[sweep_id]
        value = metrics.get(metric)
        return value is not None and scheduler.report(trial_id, epoch, value)

    def started(
        self,
        trials: list[tuple[int, int, int]],
        node_id: str,
        device: str,
        pack_id: str | None = None,
    ) -> list[int]:
        """Record that a job's (trial id, attempt, resumed epoch)s began (``pack_id``: they
        train stacked); the ids of those to stop at once."""
        for trial_id, attempt, resumed in trials:
            self._add(Started(trial_id, attempt, node_id, device, pack_id, resumed))
        return [trial_id for trial_id, _, _ in trials if trial_id in self._stop]

    def report(
        self, epoch: int, reports: list[tuple[int, int, dict[str, float], str | None]]
    ) -> list[int]:
        """Record one epoch of a job's (trial id, attempt, metrics, checkpoint); ids to stop
        before their next epoch."""
        stop = []
        for trial_id, attempt, metrics, checkpoint in reports:
            self._add(EpochReport(trial_id, attempt, epoch, dict(metrics), checkpoint))
            if self._should_stop(trial_id, epoch, metrics):
                stop.append(trial_id)
        return stop

    def exploited(self, epoch: int, items: list[tuple[int, int, int, dict[str, Any]]]) -> None:
        """PBT exploits of one epoch: (trial id, attempt, source trial id, hyperparameters)."""
        for trial_id, attempt, source, hyperparameters in items:
            self._add(Exploited(trial_id, attempt, epoch, source, hyperparameters))

    def stop(self, trial_ids: list[int]) -> None:
        """Ask these trials to stop at their next report."""
        self._stop.update(trial_ids)

    def _add(self, event: Event) -> None:
        self._events.append((self._next, event))
        self._next += 1

    def pending(self, limit: int = MAX_BATCH) -> tuple[int, list[Event]]:
        """The oldest events not yet acknowledged (at most ``limit``) and the last one's number
        (0 when there are none); they stay here until ``ack``."""
        batch = [event for _, (_, event) in zip(range(limit), self._events, strict=False)]
        last = self._events[len(batch) - 1][0] if batch else 0
        return last, batch

    def ack(self, upto: int) -> None:
        """The controller has committed every event numbered up to ``upto``: forget them."""
        while self._events and self._events[0][0] <= upto:
            self._events.popleft()
