"""What the controller's collaborators share: each sweep's state in memory, the tasks in
flight. The bottom of the controller package: it imports
none of its siblings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
from sqlalchemy.orm import Session, sessionmaker

from optisweep.service.code.store import CodeStore, runtime_env
from optisweep.service.search import EarlierTrial, Searcher, sweep_searcher
from optisweep.service.sweeps.schemas import SweepCreate
from optisweep.service.trials.models import Trial, TrialState, note_status

SERVICE_CONTROLLER = "service"
"""The claim name of the controller inside the server."""


@dataclass(frozen=True)
class InFlight:
    """A Ray task not yet collected: one trial attempt, or a pack of them."""

    sweep_id: int
    trials: tuple[tuple[int, int], ...]
    """(trial id, attempt) of every trial the task trains."""
    cpus: float
    gpus: float
    pack_id: str | None = None


ADAPTIVE_CONCURRENCY_PER_SLOT = 4
"""Trials in flight per cluster slot for adaptive search when ``search.concurrency`` is unset:
enough to pack a few per task, few enough that the searcher learns as results arrive."""


@dataclass(frozen=True)
class Ended:
    """How a trial ended, to tell its sweep's searcher and scheduler once it is committed."""

    sweep_id: int
    trial_id: int
    number: int
    outcome: TrialState
    """One of the states searchers are told (``TrialState.is_told``)."""
    objective: float | None
    also: tuple[float | None, ...] = ()
    """The final values of the sweep's further objectives (``objective.also``)."""


@dataclass
class ControllerState:
    """The sweeps one controller runs, as it holds them in memory between ticks; everything
    here can be rebuilt from the database (a stale sweep is adopted again)."""

    sessions: sessionmaker[Session]
    max_trials: int
    checkpoint_dir: Path | None
    code_store: CodeStore | None = None
    """Where uploaded code packages are (a sweep's ``code.package``)."""
    inbox: Any = None
    """The inbox actor's handle, once connected."""
    specs: dict[int, SweepCreate] = field(default_factory=dict)
    """Specs of every sweep this controller took on (trials of cancelled ones still report)."""
    active: set[int] = field(default_factory=set)
    """The sweeps this controller runs now."""
    stale: set[int] = field(default_factory=set)
    """Sweeps whose state in memory may be ahead of the database (a tick failed after
    changing it): adopted again, from what the database holds, at the next claim."""
    searchers: dict[int, Searcher] = field(default_factory=dict)
    """Adaptive sweeps' searchers, rebuilt from the stored trials when a sweep is adopted."""
    slots: int = 1
    """Trials the cluster runs at once (at the least CPUs per trial of the active sweeps)."""
    in_flight: dict[ray.ObjectRef[Any], InFlight] = field(default_factory=dict)
    by_trial: dict[int, int] = field(default_factory=dict)
    """Trial id -> the attempt of it in flight."""
    checkpoint_roots: dict[int, Path] = field(default_factory=dict)
    """Sweep id -> the folder of its trials' checkpoints."""
    range_tests: dict[ray.ObjectRef[Any], int] = field(default_factory=dict)
    """Learning-rate range tests in flight, by sweep id (``lr: auto``)."""

    def task_options(self, spec: SweepCreate) -> dict[str, Any]:
        """Ray options every task of this sweep takes: its code as a runtime_env, if any."""
        env = runtime_env(spec.code, self.code_store)
        return {} if env is None else {"runtime_env": env}

    def searcher_for(self, spec: SweepCreate, earlier: Sequence[EarlierTrial] = ()) -> Searcher:
        """A new searcher for an adaptive sweep, as the controller drives it: repeats, and
        ``search.concurrency`` trials in flight (unset: a few per slot of the cluster),
        having learnt from ``earlier`` sweeps' trials (``search.warm_start``)."""
        return sweep_searcher(
            spec,
            max_trials=self.max_trials,
            earlier=earlier,
            concurrency=lambda: (
                spec.search.concurrency or ADAPTIVE_CONCURRENCY_PER_SLOT * self.slots
            ),
        )

    def release(self, sweep_id: int) -> None:
        """A sweep that is no longer ours to run (cancelled, failed): stop its trials in flight."""
        self.active.discard(sweep_id)
        self.searchers.pop(sweep_id, None)
        trial_ids = [
            trial_id
            for flight in self.in_flight.values()
            if flight.sweep_id == sweep_id
            for trial_id, _ in flight.trials
        ]
        if trial_ids:
            self.inbox.stop.remote(trial_ids)


def start_over(trials: list[Trial], why: str) -> None:
    """Put trials back in the queue for a new attempt.

    Their curves stay until the next attempt starts: it says which epoch it continues after
    (its checkpoint's, or 0) and the controller forgets what was recorded after that.
    """
    for trial in trials:
        trial.status = TrialState.PENDING
        trial.started_at = None
        note_status(trial, why)
