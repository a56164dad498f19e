"""The controller: owns sweep state, dispatches trials to Ray, records what workers report.

Everything it knows lives in SQL, so a restarted controller picks up where the last one
stopped. A controller claims sweeps (``sweeps.claimed_by``) and renews the claim with a
heartbeat; the server's controller is always called ``service`` and takes its own sweeps back
at once after a restart, while a claim of a controller that stopped heartbeating (say an
``optisweep run`` that was killed) can be taken over after ``lease_seconds``.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import RayError, RayTaskError
from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from service.controller.expand import expand, resolve_lr, trial_seed
from service.controller.inbox import MAX_BATCH, EpochReport, Exploited, Inbox, Started
from service.controller.ray_runtime import cluster_capacity, largest_node
from service.controller.searchers import AdaptiveSearcher, StoredTrial, Suggestion, make_searcher
from service.controller.searchers.base import Outcome
from service.db.base import utcnow
from service.errors import SpecError
from service.sweeps.models import Sweep, SweepStatus
from service.sweeps.repository import ACTIVE, finish_sweep
from service.sweeps.schemas import ADAPTIVE, ObjectiveSpec, PbtSpec, ResourcesSpec, SweepCreate
from service.trials.models import (
    FamilyImprovement,
    FamilyTally,
    Trial,
    TrialStatus,
    note_status,
)
from service.trials.repository import (
    best_metric,
    cancel_pending,
    delete_metrics,
    metric_curves,
    record_metrics,
    stop_trials,
)
from workers.memory import member_memory_bytes
from workers.tasks import run_pack, run_range_test, run_trial, warm_up
from workers.workloads import get_workload

logger = logging.getLogger(__name__)

SERVICE_CONTROLLER = "service"
"""The claim name of the controller inside the server."""

_RESULT_STATUS = {
    "completed": TrialStatus.COMPLETED,
    "diverged": TrialStatus.DIVERGED,
    "stopped": TrialStatus.STOPPED,
}
_OPEN = (TrialStatus.PENDING, TrialStatus.RUNNING)
_OUTCOMES: dict[TrialStatus, Outcome] = {
    TrialStatus.COMPLETED: "completed",
    TrialStatus.STOPPED: "stopped",
    TrialStatus.DIVERGED: "diverged",
    TrialStatus.FAILED: "failed",
}
MAX_SWEEP_FAULTS = 5
"""Times in a row one step of handling a sweep (starting it, submitting its tasks, telling its
searcher) may fail before the sweep fails with that error; other sweeps run on meanwhile."""
BACKOFF_SECONDS = (0.5, 30.0)
"""After a failed tick (the database unreachable, say) the next waits the first, doubling up
to the second with every further failure."""
ADAPTIVE_CONCURRENCY_PER_SLOT = 4
"""Trials in flight per cluster slot for adaptive search when ``search.concurrency`` is unset:
enough to pack a few per task, few enough that the searcher learns as results arrive."""


@dataclass(frozen=True)
class _InFlight:
    """A Ray task not yet collected: one trial attempt, or a pack of them."""

    sweep_id: int
    trials: tuple[tuple[int, int], ...]
    """(trial id, attempt) of every trial the task trains."""
    cpus: float
    gpus: float
    pack_id: str | None = None


def _configuration_result(trials: Iterable[Trial]) -> tuple[Outcome | None, float | None]:
    """How a configuration trained over several seeds ended, and its mean objective.

    None while a repeat is still open; diverged if any repeat diverged; failed if all failed;
    otherwise completed (stopped if any was stopped early), the mean over finite objectives.
    """
    trials = list(trials)
    if any(trial.status in _OPEN for trial in trials):
        return None, None
    values = [
        trial.objective
        for trial in trials
        if trial.objective is not None and math.isfinite(trial.objective)
    ]
    mean = sum(values) / len(values) if values else None
    statuses = {trial.status for trial in trials}
    if TrialStatus.DIVERGED in statuses:
        return "diverged", mean
    if statuses == {TrialStatus.FAILED}:
        return "failed", None
    return ("stopped" if TrialStatus.STOPPED in statuses else "completed"), mean


def _insert_trials(
    session: Session, sweep_id: int, spec: SweepCreate, suggestions: list[Suggestion]
) -> None:
    """A grid or random sweep's trials, numbered in expansion order, all pending."""
    session.execute(
        insert(Trial),
        [
            {
                "sweep_id": sweep_id,
                "number": number,
                "optimizer": suggestion.optimizer,
                "hyperparameters": suggestion.hyperparameters,
                "seed": trial_seed(spec.search.seed, number),
                "status": TrialStatus.PENDING,
            }
            for number, suggestion in enumerate(suggestions)
        ],
    )


def _outcome(
    session: Session, sweep_id: int, by_status: dict[TrialStatus, int]
) -> tuple[SweepStatus, str | None]:
    """How a sweep whose trials all ended ends: FAILED when most of its trials failed, else
    COMPLETED; with any failed trial, a summary: how many failed and the commonest error."""
    failed, total = by_status.get(TrialStatus.FAILED, 0), sum(by_status.values())
    if not failed:
        return SweepStatus.COMPLETED, None
    errors = session.execute(
        select(Trial.error, func.count())
        .where(Trial.sweep_id == sweep_id, Trial.status == TrialStatus.FAILED)
        .group_by(Trial.error)
        .order_by(func.count().desc(), Trial.error)
        .limit(1)
    ).first()
    commonest = f": {errors[0]}" if errors and errors[0] else ""
    if errors and errors[1] < failed:
        commonest += f" (and {failed - errors[1]} with other errors)"
    status = SweepStatus.FAILED if 2 * failed > total else SweepStatus.COMPLETED
    return status, f"{failed} of {total} trials failed{commonest}"[:2000]


def _is_better(value: float, than: float | None, *, objective: ObjectiveSpec) -> bool:
    if than is None or math.isnan(than):
        return True
    return value > than if objective.mode == "max" else value < than


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


def _start_over(trials: list[Trial], why: str) -> None:
    """Put trials back in the queue for a new attempt.

    Their curves stay until the next attempt starts: it says which epoch it continues after
    (its checkpoint's, or 0) and the controller forgets what was recorded after that.
    """
    for trial in trials:
        trial.status = TrialStatus.PENDING
        trial.started_at = None
        note_status(trial, why)


_ABSOLUTE_PATH = re.compile(r"(?<![\w.~])/(?:[^\s'\":,()\[\]]+/)*([^\s'\":,()\[\]/]+)")


def scrub_paths(message: str, root: Path | None) -> str:
    """``message`` without the server's file system: paths under ``root`` become relative to it,
    any other absolute path shrinks to its last component."""
    if root is not None:
        message = message.replace(f"{root}/", "").replace(str(root), ".")
    return _ABSOLUTE_PATH.sub(r"\1", message)


def _describe(exc: BaseException, root: Path | None = None) -> str:
    """A trial's error for users: the exception raised in the worker, without Ray's wrapping
    (and without the server's paths)."""
    if isinstance(exc, RayTaskError) and exc.cause is not None:
        text = f"{type(exc.cause).__name__}: {exc.cause}".strip()
    else:
        text = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".strip()
    return scrub_paths(text, root)[:2000]


def database_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot be reached (no sweep is to blame for it)."""
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


@dataclass(frozen=True)
class _Ended:
    """How a trial ended, to tell its sweep's searcher and scheduler once it is committed."""

    sweep_id: int
    trial_id: int
    outcome: Outcome
    objective: float | None
    configuration: tuple[int, Outcome, float | None] | None
    """(index, outcome, mean objective) of its configuration, when all its repeats ended."""


class Controller:
    """Runs sweeps on Ray: claim, expand, dispatch, record, retry, finish."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        max_trials: int,
        controller_id: str = SERVICE_CONTROLLER,
        sweep_id: int | None = None,
        poll_seconds: float = 0.2,
        claim_seconds: float = 2.0,
        lease_seconds: float = 30.0,
        pack_memory_mb: float = 2048.0,
        checkpoint_dir: str | Path | None = None,
    ) -> None:
        self._sessions = sessions
        self._max_trials = max_trials
        self.controller_id = controller_id
        self._only_sweep = sweep_id
        self._poll_seconds = poll_seconds
        self._claim_seconds = claim_seconds
        self._lease = timedelta(seconds=lease_seconds)
        self._specs: dict[int, SweepCreate] = {}
        """Specs of every sweep this controller took on (trials of cancelled ones still report)."""
        self._active: set[int] = set()
        """The sweeps this controller runs now."""
        self._in_flight: dict[ray.ObjectRef[Any], _InFlight] = {}
        self._by_trial: dict[int, int] = {}
        """Trial id -> the attempt of it in flight."""
        self._capacity = (0.0, 0.0)
        self._last_claim = -math.inf
        self._recovered = False
        self._last_capacity = -math.inf
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._inbox: Any = None
        self._remote: Any = None
        self._remote_pack: Any = None
        self._warming: list[Any] = []
        self._pack_memory_mb = pack_memory_mb
        self._member_bytes: dict[str, int] = {}
        self._checkpoint_dir = (
            Path(checkpoint_dir).expanduser().resolve() if checkpoint_dir else None
        )
        self._checkpoint_roots: dict[int, Path] = {}
        """Sweep id -> the folder of its trials' checkpoints."""
        self._range_tests: dict[ray.ObjectRef[Any], int] = {}
        """Learning-rate range tests in flight, by sweep id (``lr: auto``)."""
        self._searchers: dict[int, AdaptiveSearcher] = {}
        """Adaptive sweeps' searchers, rebuilt from the stored trials when a sweep is adopted."""
        self._stale: set[int] = set()
        """Sweeps whose state in memory may be ahead of the database (a tick failed after
        changing it): adopted again, from what the database holds, at the next claim."""
        self._faults: Counter[tuple[int, str]] = Counter()
        """(sweep id, step) -> how many times in a row that step failed for that sweep."""
        self._failing: dict[int, str] = {}
        """Sweeps to fail at the end of this tick (a step failed too often), with why."""
        self.failed_ticks = 0
        """Ticks that failed in a row (0 while the loop runs well)."""
        self.last_error: str | None = None
        """Why the last tick failed, while ticks fail."""

    # lifecycle -------------------------------------------------------------------------------

    def _connect(self) -> None:
        if self._inbox is None:
            self._inbox = ray.remote(num_cpus=0)(Inbox).remote()
            # Ray's type stubs only describe positional signatures; these take keywords.
            self._remote = ray.remote(max_retries=0)(run_trial)  # type: ignore[arg-type]
            self._remote_pack = ray.remote(max_retries=0)(run_pack)  # type: ignore[arg-type]

    def start(self) -> None:
        """Run the controller loop in a background thread (Ray must be initialised)."""
        self._connect()
        # Start one worker per CPU and import the training stack there now, so the first
        # sweep does not wait for torch to load; Ray reuses these idle workers for trials.
        cpus, _ = cluster_capacity()
        warm = ray.remote(num_cpus=1, max_retries=0)(warm_up)
        self._warming = [warm.remote() for _ in range(int(cpus))]
        self._thread = threading.Thread(target=self._loop, name="optisweep-controller", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop; trials in flight stay RUNNING in SQL and are recovered on restart."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @staticmethod
    def check_feasible(resources: ResourcesSpec) -> None:
        """SpecError unless some node of the cluster can hold one trial of these resources."""
        cpus, gpus = largest_node()
        for field, wanted, offered in (
            ("cpus_per_trial", resources.cpus_per_trial, cpus),
            ("gpus_per_trial", resources.gpus_per_trial, gpus),
        ):
            if wanted > offered:
                raise SpecError(
                    f"{wanted:g} requested per trial, but no node of the Ray cluster has more "
                    f"than {offered:g}",
                    field=f"resources.{field}",
                )

    def wake(self) -> None:
        """Look for new or cancelled sweeps now instead of at the next claim interval."""
        self._wake.set()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self.tick_or_back_off()

    def tick_or_back_off(self) -> bool:
        """One tick; if it fails, note why, mark the sweeps' memory stale and wait a backoff
        that doubles with each failure in a row. Whether the tick succeeded."""
        try:
            self.tick()
        except Exception as exc:
            self.failed_ticks += 1
            self.last_error = _describe(exc, self._checkpoint_dir)
            self._stale |= self._active
            first, most = BACKOFF_SECONDS
            backoff = min(most, first * 2 ** (self.failed_ticks - 1))
            logger.exception(
                "controller tick failed (%d in a row); retrying in %.1f s",
                self.failed_ticks,
                backoff,
            )
            self._stopping.wait(backoff)
            return False
        if self.failed_ticks:
            logger.info("controller recovered after %d failed ticks", self.failed_ticks)
        self.failed_ticks, self.last_error = 0, None
        return True

    def run_sweep(self, sweep_id: int, *, on_tick: Callable[[], None] | None = None) -> None:
        """Drive one sweep in this thread until it finishes (``optisweep run``)."""
        self._connect()
        while not self._stopping.is_set():
            if not self.tick_or_back_off():
                continue
            if on_tick is not None:
                on_tick()
            if sweep_id not in self._active and not self._in_flight:
                with self._sessions() as session:
                    sweep = session.get(Sweep, sweep_id)
                    if sweep is None or sweep.status not in ACTIVE:
                        return

    # one step of the loop --------------------------------------------------------------------

    def tick(self) -> None:
        """Claim sweeps, record what workers reported and which tasks ended, dispatch more."""
        now = time.monotonic()
        if self._wake.is_set() or self._stale or now - self._last_claim >= self._claim_seconds:
            self._wake.clear()
            self._last_claim = now
            self._claim()
        self._record(self._wait())
        self._collect_range_tests()
        self._dispatch()
        self._finish_sweeps()
        self._fail_faulted()

    def _record(self, finished: list[ray.ObjectRef[Any]]) -> None:
        """Write the inbox's pending events and the ended tasks' results in one transaction;
        only after it commits are the events acknowledged and the tasks let go."""
        last, events = (0, []) if self._inbox is None else ray.get(self._inbox.pending.remote())
        if last and len(events) >= MAX_BATCH:
            finished = []  # a task's last reports may be in the next batch: end it after those
        if not events and not finished:
            return
        ended: list[_Ended] = []
        with self._sessions.begin() as session:
            self._apply_events(session, events)
            self._apply_results(session, finished, ended)
        if last:
            self._inbox.ack.remote(last)  # ordered before this controller's next pending()
        for ref in finished:
            for trial_id, _ in self._in_flight.pop(ref).trials:
                self._by_trial.pop(trial_id, None)
        for end in ended:
            with self._isolated(end.sweep_id, "telling its searcher"):
                self._tell(end)

    def _wait(self) -> list[ray.ObjectRef[Any]]:
        refs = list(self._in_flight)
        if not refs:
            self._wake.wait(self._poll_seconds)
            return []
        ray.wait(refs, num_returns=1, timeout=self._poll_seconds)
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        return ready

    # claiming and recovery -------------------------------------------------------------------

    def _claim(self) -> None:
        now = utcnow()
        conditions = [
            Sweep.status.in_(ACTIVE),
            or_(
                Sweep.claimed_by.is_(None),
                Sweep.claimed_by == self.controller_id,
                Sweep.heartbeat_at < now - self._lease,
            ),
        ]
        if self._only_sweep is not None:
            conditions.append(Sweep.id == self._only_sweep)
        with self._sessions.begin() as session:
            session.execute(
                update(Sweep)
                .where(*conditions)
                .values(claimed_by=self.controller_id, heartbeat_at=now)
                .values(updated_at=Sweep.updated_at)
                .execution_options(synchronize_session=False)
            )
            owned = list(
                session.scalars(
                    select(Sweep).where(
                        Sweep.claimed_by == self.controller_id, Sweep.status.in_(ACTIVE)
                    )
                )
            )
            stale = set(self._stale)
            for sweep in owned:
                if sweep.id not in self._active or sweep.id in stale:
                    self._adopt_or_fail(session, sweep)
            if not self._recovered:
                self._stop_abandoned(session, now=now)
                self._recovered = True
        self._stale -= stale
        lost = self._active - {sweep.id for sweep in owned}
        for sweep_id in lost:
            self._release(sweep_id)

    def _stop_abandoned(self, session: Session, *, now: datetime) -> None:
        """Trials left open in sweeps cancelled while no controller ran them: those that never
        started CANCELLED, those that had started STOPPED."""
        ours = or_(
            Sweep.claimed_by.is_(None),
            Sweep.claimed_by == self.controller_id,
            Sweep.heartbeat_at < now - self._lease,
        )
        finished = select(Sweep.id).where(Sweep.status.not_in(ACTIVE), ours)
        cancel_pending(session, Trial.sweep_id.in_(finished), at=now, why="sweep cancelled")
        abandoned = Trial.sweep_id.in_(finished) & (Trial.status == TrialStatus.RUNNING)
        stop_trials(session, abandoned, at=now, error="sweep cancelled")

    def _adopt_or_fail(self, session: Session, sweep: Sweep) -> None:
        """Adopt a sweep; one that cannot start (bad stored data) fails alone, not the loop."""
        try:
            with session.begin_nested():
                self._adopt(session, sweep)
        except Exception as exc:
            if database_unreachable(exc):
                raise  # retry the whole tick later
            logger.exception("sweep %s could not start", sweep.id)
            self._active.discard(sweep.id)
            message = f"could not start: {_describe(exc, self._checkpoint_dir)}"
            fault = (sweep.id, "starting")
            self._faults[fault] += 1
            if isinstance(exc, SQLAlchemyError | ValueError) or (
                self._faults[fault] >= MAX_SWEEP_FAULTS
            ):
                del self._faults[fault]
                finish_sweep(session, sweep, SweepStatus.FAILED, at=utcnow(), error=message)
                cancel_pending(session, Trial.sweep_id == sweep.id, at=utcnow(), why=message)
        else:
            self._faults.pop((sweep.id, "starting"), None)

    @contextmanager
    def _isolated(self, sweep_id: int, step: str) -> Iterator[None]:
        """Contain a failure of one step for one sweep: the database being unreachable goes
        on up (the tick is retried); anything else is logged, retried at the next tick, and
        after ``MAX_SWEEP_FAULTS`` failures in a row fails that sweep alone."""
        try:
            yield
        except Exception as exc:
            if database_unreachable(exc):
                raise
            self._faults[(sweep_id, step)] += 1
            count = self._faults[(sweep_id, step)]
            logger.warning("sweep %s: %s failed (%d in a row)", sweep_id, step, count, exc_info=exc)
            self._stale.add(sweep_id)  # what it holds in memory is rebuilt from the database
            if count >= MAX_SWEEP_FAULTS:
                why = f"{step} failed {count} times: {_describe(exc, self._checkpoint_dir)}"
                self._failing.setdefault(sweep_id, why)
        else:
            self._faults.pop((sweep_id, step), None)

    def _fail_faulted(self) -> None:
        """Fail the sweeps that failed a step too often: their trials that never started are
        cancelled, the ones in flight asked to stop; what their trials recorded stays."""
        if not self._failing:
            return
        with self._sessions.begin() as session:
            for sweep_id, why in self._failing.items():
                logger.error("sweep %s failed: %s", sweep_id, why)
                sweep = session.get(Sweep, sweep_id)
                if sweep is not None:
                    finish_sweep(session, sweep, SweepStatus.FAILED, at=utcnow(), error=why)
                    cancel_pending(session, Trial.sweep_id == sweep_id, at=utcnow(), why=why)
        for sweep_id in self._failing:
            for key in [key for key in self._faults if key[0] == sweep_id]:
                del self._faults[key]
            self._release(sweep_id)
        self._failing.clear()

    def _adopt(self, session: Session, sweep: Sweep) -> None:
        """Take a sweep on: recover trials a previous controller left running, expand if new."""
        spec = SweepCreate.model_validate(sweep.spec)
        # lr: auto without a range test yet: run it, then expand (_collect_range_tests).
        ranging = spec.space.lr == "auto" and sweep.lr_range is None
        if spec.space.lr == "auto" and sweep.lr_range is not None:
            spec = resolve_lr(spec, sweep.lr_range)
        orphans = list(
            session.scalars(
                select(Trial).where(
                    Trial.sweep_id == sweep.id,
                    Trial.status == TrialStatus.RUNNING,
                    Trial.id.not_in(list(self._by_trial) or [-1]),
                )
            )
        )
        for trial in orphans:
            # The attempt was interrupted, not failed: it starts again and does not count.
            trial.attempt = max(trial.attempt - 1, 0)
        _start_over(orphans, "interrupted: the server stopped while it ran")
        if orphans:
            logger.info("sweep %s: %d interrupted trials start again", sweep.id, len(orphans))
        adaptive = spec.search.algorithm in ADAPTIVE
        if adaptive and not ranging:
            searcher = make_searcher(spec, max_trials=self._max_trials)
            assert isinstance(searcher, AdaptiveSearcher)
            repeats = spec.search.repeats
            configurations: dict[int, list[Trial]] = defaultdict(list)
            for trial in session.scalars(select(Trial).where(Trial.sweep_id == sweep.id)):
                configurations[trial.number // repeats].append(trial)
            stored = []
            for index, trials in sorted(configurations.items()):
                outcome, objective = _configuration_result(trials)
                stored.append(StoredTrial(index, trials[0].search_params or {}, outcome, objective))
            searcher.restore(stored)
            self._searchers[sweep.id] = searcher
        if sweep.status == SweepStatus.PENDING:
            existing = session.scalar(select(func.count()).where(Trial.sweep_id == sweep.id))
            if not existing and not adaptive and not ranging:
                try:
                    suggestions = expand(spec, max_trials=self._max_trials)
                except SpecError as exc:
                    finish_sweep(
                        session, sweep, SweepStatus.FAILED, at=utcnow(), error=f"{exc.field}: {exc}"
                    )
                    return
                _insert_trials(session, sweep.id, spec, suggestions)
                session.execute(
                    update(Sweep)
                    .where(Sweep.id == sweep.id)
                    .values(num_trials=len(suggestions))
                    .execution_options(synchronize_session=False)
                )
            started = session.execute(
                update(Sweep)
                .where(Sweep.id == sweep.id, Sweep.status == SweepStatus.PENDING)
                .values(status=SweepStatus.RUNNING)
                .execution_options(synchronize_session=False)
            )
            if not started.rowcount:  # type: ignore[attr-defined]
                return  # cancelled meanwhile
        self._specs[sweep.id] = spec
        self._active.add(sweep.id)
        if spec.search.pruner is not None:
            self._schedule(session, sweep.id, spec)
        if ranging and sweep.id not in self._range_tests.values():
            self._start_range_test(sweep.id, spec)
        if self._checkpoint_dir is not None:
            # Sweep ids repeat across databases; the creation time tells their sweeps apart.
            stamp = sweep.created_at.strftime("%Y%m%dT%H%M%S%f")
            self._checkpoint_roots[sweep.id] = self._checkpoint_dir / f"sweep-{sweep.id}-{stamp}"

    def _start_range_test(self, sweep_id: int, spec: SweepCreate) -> None:
        """Run the learning-rate range test of a sweep with ``lr: auto`` on the cluster."""
        task = ray.remote(max_retries=1)(run_range_test).options(
            num_cpus=spec.resources.cpus_per_trial, num_gpus=spec.resources.gpus_per_trial
        )
        payload = {
            "workload": spec.workload.config(),
            "optimizers": spec.space.optimizers,
            "seed": spec.search.seed,
        }
        self._range_tests[task.remote(payload)] = sweep_id
        logger.info("sweep %s: learning-rate range test started", sweep_id)

    def _collect_range_tests(self) -> None:
        """Sweeps whose range test finished: store the bounds, then expand or start searching."""
        if not self._range_tests:
            return
        refs = list(self._range_tests)
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        for ref in ready:
            sweep_id = self._range_tests.pop(ref)
            try:
                result: dict[str, Any] = ray.get(ref)
                error = None
            except RayError as exc:
                result, error = {}, _describe(exc, self._checkpoint_dir)
            with self._isolated(sweep_id, "starting after its lr range test"):
                self._range_tested(sweep_id, result, error)

    def _range_tested(self, sweep_id: int, result: dict[str, Any], error: str | None) -> None:
        """Store a sweep's lr range test and expand its trials (or fail it, with ``error``)."""
        with self._sessions.begin() as session:
            sweep = session.get(Sweep, sweep_id)
            if sweep is None or sweep_id not in self._active:
                return  # cancelled meanwhile
            if error is not None:
                message = f"lr range test failed: {error}"
                finish_sweep(session, sweep, SweepStatus.FAILED, at=utcnow(), error=message)
                self._active.discard(sweep_id)
                return
            sweep.lr_range = result
            spec = resolve_lr(self._specs[sweep_id], result)
            self._specs[sweep_id] = spec
            if spec.search.algorithm in ADAPTIVE:
                searcher = make_searcher(spec, max_trials=self._max_trials)
                assert isinstance(searcher, AdaptiveSearcher)
                self._searchers[sweep_id] = searcher
            else:
                suggestions = expand(spec, max_trials=self._max_trials)
                _insert_trials(session, sweep_id, spec, suggestions)
        bounds = {name: (r["low"], r["high"]) for name, r in result.items()}
        logger.info("sweep %s: lr bounds from the range test %s", sweep_id, bounds)

    def _schedule(self, session: Session, sweep_id: int, spec: SweepCreate) -> None:
        """Hand the sweep's early-stopping scheduler to the inbox, with the finished curves."""
        assert spec.search.pruner is not None
        finished = list(
            session.scalars(
                select(Trial).where(Trial.sweep_id == sweep_id, Trial.status.not_in(_OPEN))
            )
        )
        curves = metric_curves(
            session, trial_ids=[t.id for t in finished], name=spec.objective.metric
        )
        ray.get(
            self._inbox.schedule.remote(
                sweep_id,
                spec.search.pruner.model_dump(mode="json"),
                metric=spec.objective.metric,
                mode=spec.objective.mode,
                max_epochs=spec.workload.epochs,
                finished=[(_OUTCOMES[t.status], curves[t.id], t.objective) for t in finished],
            )
        )

    def _release(self, sweep_id: int) -> None:
        """A sweep that is no longer ours to run (cancelled): stop its trials in flight."""
        self._active.discard(sweep_id)
        self._searchers.pop(sweep_id, None)
        trial_ids = [
            trial_id
            for flight in self._in_flight.values()
            if flight.sweep_id == sweep_id
            for trial_id, _ in flight.trials
        ]
        if trial_ids:
            self._inbox.stop.remote(trial_ids)

    # recording -------------------------------------------------------------------------------

    def _apply_events(
        self, session: Session, events: Iterable[Started | EpochReport | Exploited]
    ) -> None:
        events = [e for e in events if self._by_trial.get(e.trial_id) == e.attempt]
        if not events:
            return
        trials = {
            trial.id: trial
            for trial in session.scalars(
                select(Trial).where(Trial.id.in_({e.trial_id for e in events}))
            )
        }
        epochs: dict[int, list[tuple[int, dict[str, float]]]] = defaultdict(list)
        tallies: dict[tuple[int, str], FamilyTally] = {}
        self._forget_after(session, trials, [e for e in events if isinstance(e, Started)])
        for event in events:
            trial = trials[event.trial_id]
            if isinstance(event, Exploited):
                trial.hyperparameters = event.hyperparameters
                history = {
                    "epoch": event.epoch,
                    "source_trial_id": event.source_trial_id,
                    "hyperparameters": event.hyperparameters,
                }
                if history not in (trial.hyperparameter_history or []):  # redelivered: once
                    trial.hyperparameter_history = [*(trial.hyperparameter_history or []), history]
                continue
            if isinstance(event, Started):
                if trial.status == TrialStatus.PENDING:
                    trial.status = TrialStatus.RUNNING
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
                continue
            epochs[trial.id].append((event.epoch, event.metrics))
            ran_before = trial.epochs_run or 0
            trial.epochs_run = max(ran_before, event.epoch)
            if event.checkpoint is not None:
                trial.checkpoint_path = event.checkpoint
                trial.checkpoint_epoch = event.epoch
            objective = self._specs[trial.sweep_id].objective
            found = event.metrics.get(objective.metric)
            value = found if found is not None and math.isfinite(found) else None
            if value is not None and _is_better(value, trial.best_objective, objective=objective):
                trial.best_objective = value
            if event.epoch > ran_before:  # a new epoch, not the re-report of a checkpoint's
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
        for trial_id, rows in epochs.items():
            record_metrics(session, trial_id=trial_id, rows=rows)

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
            delete_metrics(session, trial_ids=trial_ids, after_step=epoch)
            for trial_id in trial_ids:
                trial = trials[trial_id]
                trial.epochs_run = min(trial.epochs_run or 0, epoch)
                if epoch == 0:
                    trial.best_objective = None
                    trial.checkpoint_path = trial.checkpoint_epoch = None
                    continue
                objective = self._specs[trial.sweep_id].objective
                trial.best_objective = best_metric(
                    session, trial_id=trial_id, name=objective.metric, mode=objective.mode
                )

    def _apply_results(
        self, session: Session, finished: Iterable[ray.ObjectRef[Any]], ended: list[_Ended]
    ) -> None:
        """Write how the tasks in ``finished`` ended; ``ended`` gets what to tell searchers."""
        now = utcnow()
        for ref in finished:
            flight = self._in_flight[ref]
            try:
                outcome: Any = ray.get(ref)
                error = None
            except RayError as exc:
                outcome, error = None, _describe(exc, self._checkpoint_dir)
            results = [outcome] if flight.pack_id is None else outcome
            objective = self._specs[flight.sweep_id].objective
            cancelled = flight.sweep_id not in self._active
            for index, (trial_id, attempt) in enumerate(flight.trials):
                trial = session.get(Trial, trial_id)
                if trial is None:  # its sweep was deleted meanwhile
                    continue
                trial.attempt = attempt
                if error is not None:
                    self._attempt_failed(session, trial, flight, attempt, error, ended)
                    continue
                result: dict[str, Any] = results[index]
                trial.status = _RESULT_STATUS[result["status"]]
                if cancelled and result["status"] == "stopped" and not result["epochs_run"]:
                    trial.status = TrialStatus.CANCELLED  # stopped before its first epoch
                trial.objective = result["metrics"].get(objective.metric)
                trial.device = result["device"]
                trial.node_id = result["node_id"]
                stopped = cancelled and result["status"] == "stopped"
                trial.error = "sweep cancelled" if stopped else None
                trial.finished_at = now
                note_status(trial, trial.error or f"after epoch {result['epochs_run']}", at=now)
                self._ended(session, trial, ended)

    def _attempt_failed(
        self,
        session: Session,
        trial: Trial,
        flight: _InFlight,
        attempt: int,
        message: str,
        ended: list[_Ended],
    ) -> None:
        spec = self._specs[flight.sweep_id]
        if flight.sweep_id in self._active and attempt <= spec.resources.max_failures:
            logger.warning("trial %s attempt %s failed: %s", trial.id, attempt, message)
            trial.error = f"attempt {attempt} failed: {message}"
            _start_over([trial], trial.error)
            return
        trial.status = TrialStatus.FAILED
        trial.error = message
        trial.finished_at = utcnow()
        note_status(trial, message, at=trial.finished_at)
        self._ended(session, trial, ended)

    def _ended(self, session: Session, trial: Trial, ended: list[_Ended]) -> None:
        """Note, for after the commit, what the trial's searcher and scheduler are to hear."""
        outcome = _OUTCOMES.get(trial.status)
        spec = self._specs.get(trial.sweep_id)
        if outcome is None or spec is None:
            return
        configuration = None
        repeats = spec.search.repeats
        if trial.sweep_id in self._searchers and repeats > 1:
            # a configuration is told once all its repeats ended, with their mean
            index = trial.number // repeats
            siblings = session.scalars(
                select(Trial).where(
                    Trial.sweep_id == trial.sweep_id,
                    Trial.number >= index * repeats,
                    Trial.number < (index + 1) * repeats,
                )
            )
            result, mean = _configuration_result(siblings)
            if result is not None:
                configuration = (index, result, mean)
        elif trial.sweep_id in self._searchers:
            configuration = (trial.number, outcome, trial.objective)
        ended.append(_Ended(trial.sweep_id, trial.id, outcome, trial.objective, configuration))

    def _tell(self, end: _Ended) -> None:
        """Tell the sweep's searcher and scheduler how a trial ended (after it is recorded)."""
        searcher = self._searchers.get(end.sweep_id)
        if searcher is not None and end.configuration is not None:
            searcher.tell(*end.configuration)
        spec = self._specs.get(end.sweep_id)
        if spec is not None and spec.search.pruner is not None:
            self._inbox.finished.remote(end.trial_id, end.outcome, end.objective)

    # dispatching and finishing ---------------------------------------------------------------

    def _dispatch(self) -> None:
        if not self._active:
            return
        now = time.monotonic()
        if now - self._last_capacity >= self._claim_seconds:
            self._last_capacity = now
            self._capacity = cluster_capacity()
        total_cpus, total_gpus = self._capacity
        used_cpus = sum(f.cpus for f in self._in_flight.values())
        used_gpus = sum(f.gpus for f in self._in_flight.values())
        least_cpus = min(self._specs[s].resources.cpus_per_trial for s in self._active)
        least_gpus = min(self._specs[s].resources.gpus_per_trial for s in self._active)
        if self._in_flight and (
            used_cpus + least_cpus > total_cpus + 1e-9 or used_gpus + least_gpus > total_gpus + 1e-9
        ):
            return  # the cluster is full: no need to ask the database for pending trials
        slots = max(1, math.floor(total_cpus / least_cpus)) if least_cpus > 0 else 1
        self._top_up(slots)
        with self._sessions() as session:
            pending = session.scalars(
                select(Trial)
                .where(
                    Trial.sweep_id.in_(list(self._active)),
                    Trial.status == TrialStatus.PENDING,
                    Trial.id.not_in(list(self._by_trial) or [-1]),
                )
                .order_by(Trial.sweep_id, Trial.number)
                .limit(256)
            ).all()
        by_sweep: dict[int, list[Trial]] = defaultdict(list)
        for trial in pending:
            by_sweep[trial.sweep_id].append(trial)
        in_flight: dict[int, int] = defaultdict(int)
        for flight in self._in_flight.values():
            in_flight[flight.sweep_id] += len(flight.trials)
        for sweep_id, trials in by_sweep.items():
            if sweep_id not in self._active or sweep_id in self._failing:
                continue
            spec = self._specs[sweep_id]
            if spec.search.concurrency is not None:
                trials = trials[: max(0, spec.search.concurrency - in_flight[sweep_id])]
            cpus, gpus = spec.resources.cpus_per_trial, spec.resources.gpus_per_trial
            with self._isolated(sweep_id, "submitting its trials"):
                size = self._pack_size(
                    spec, len(trials), total_cpus=total_cpus, total_gpus=total_gpus
                )
                while trials:
                    fits = (
                        used_cpus + cpus <= total_cpus + 1e-9
                        and used_gpus + gpus <= total_gpus + 1e-9
                    )
                    if self._in_flight and not fits:
                        return
                    batch, trials = trials[:size], trials[size:]
                    self._submit(spec, sweep_id, batch, cpus=cpus, gpus=gpus, pack=size > 1)
                    used_cpus += cpus
                    used_gpus += gpus

    def _top_up(self, slots: int) -> None:
        """Ask adaptive sweeps' searchers for trials until each has its concurrency in flight."""
        sweeps = [sweep_id for sweep_id in self._active if sweep_id in self._searchers]
        if not sweeps:
            return
        with self._sessions.begin() as session:
            counts: dict[int, dict[bool, int]] = defaultdict(lambda: {True: 0, False: 0})
            for sweep_id, status, count in session.execute(
                select(Trial.sweep_id, Trial.status, func.count())
                .where(Trial.sweep_id.in_(sweeps))
                .group_by(Trial.sweep_id, Trial.status)
            ):
                counts[sweep_id][status in _OPEN] += count
            rows = []
            for sweep_id in sweeps:
                with self._isolated(sweep_id, "asking its searcher"):
                    rows.extend(self._asked_rows(sweep_id, counts[sweep_id], slots))
            if rows:
                session.execute(insert(Trial), rows)

    def _asked_rows(
        self, sweep_id: int, counts: dict[bool, int], slots: int
    ) -> list[dict[str, Any]]:
        """New trials the sweep's searcher suggests, until its concurrency is in flight (rows
        for ``insert(Trial)``; ``counts``: trials open (True) and ended (False))."""
        spec = self._specs[sweep_id]
        assert spec.search.num_trials is not None  # required for adaptive search
        repeats = spec.search.repeats
        created = (counts[True] + counts[False]) // repeats
        concurrency = spec.search.concurrency or ADAPTIVE_CONCURRENCY_PER_SLOT * slots
        room = concurrency - counts[True]
        # Configurations to ask for; one at least when nothing runs, whatever repeats is.
        wanted = min(room // repeats or int(counts[True] == 0), spec.search.num_trials - created)
        asked = [self._searchers[sweep_id].ask() for _ in range(max(0, wanted))]
        return [
            {
                "sweep_id": sweep_id,
                "number": number,
                "optimizer": suggestion.optimizer,
                "hyperparameters": suggestion.hyperparameters,
                "search_params": params,
                "seed": trial_seed(spec.search.seed, number),
                "status": TrialStatus.PENDING,
            }
            for index, (suggestion, params) in enumerate(asked, start=created)
            for number in range(index * repeats, (index + 1) * repeats)
        ]

    def _pack_size(
        self, spec: SweepCreate, pending: int, *, total_cpus: float, total_gpus: float
    ) -> int:
        """How many trials one task trains: spread the pending trials over the cluster's slots.

        One per task when packing is off or the workload cannot be packed; otherwise pending
        trials divided by the trials the cluster runs at once, capped by ``max_pack_size`` and,
        on CPUs, by what fits in ``pack_memory_mb``.
        """
        resources = spec.resources
        if not resources.pack or not get_workload(spec.workload.name).packable:
            return 1
        slots = total_cpus / resources.cpus_per_trial
        if resources.gpus_per_trial > 0:
            slots = min(slots, total_gpus / resources.gpus_per_trial)
        if isinstance(spec.search.scheduler, PbtSpec):
            slots = 1  # PBT's population is a pack: keep the sweep's trials together
        size = min(math.ceil(pending / max(1, math.floor(slots))), resources.max_pack_size)
        if size <= 1 or resources.gpus_per_trial > 0:
            # On a GPU the worker splits a pack to fit the device's free memory.
            return max(1, size)
        return min(size, self._memory_cap(spec))

    def _memory_cap(self, spec: SweepCreate) -> int:
        """How many members fit in ``pack_memory_mb``, from a one-member probe (cached)."""
        key = json.dumps([spec.workload.config(), sorted(spec.space.optimizers)], sort_keys=True)
        if key not in self._member_bytes:
            try:
                self._member_bytes[key] = member_memory_bytes(
                    spec.workload.config(), spec.space.optimizers
                )
            except Exception:
                # The probe builds the workload here; if that fails, the workers will say why
                # for each trial. Until then, no memory cap is known.
                logger.exception("could not measure a pack member of %s", spec.workload.name)
                self._member_bytes[key] = 0
        if not self._member_bytes[key]:
            return spec.resources.max_pack_size
        return max(1, int(self._pack_memory_mb * 2**20 // self._member_bytes[key]))

    def _submit(
        self,
        spec: SweepCreate,
        sweep_id: int,
        trials: list[Trial],
        *,
        cpus: float,
        gpus: float,
        pack: bool,
    ) -> None:
        workload = spec.workload.config()
        attempts = tuple((trial.id, trial.attempt + 1) for trial in trials)
        if spec.search.pruner is not None:
            self._track(spec, sweep_id, trials)
        options = self._remote.options(num_cpus=cpus, num_gpus=gpus)
        plans = self._checkpoint_plans(spec, sweep_id, trials)
        pack_id = None
        if pack:
            pack_id = uuid.uuid4().hex[:16]
            payload: dict[str, Any] = {
                "workload": workload,
                "members": [
                    {"optimizer": t.optimizer, "hparams": t.hyperparameters, "seed": t.seed}
                    for t in trials
                ],
                "data_seed": spec.search.seed,
            }
            scheduler = spec.search.scheduler
            if isinstance(scheduler, PbtSpec):
                payload["pbt"] = {
                    **scheduler.model_dump(exclude={"name"}),
                    "metric": spec.objective.metric,
                    "mode": spec.objective.mode,
                }
            ref = self._remote_pack.options(num_cpus=cpus, num_gpus=gpus).remote(
                payload,
                trials=list(attempts),
                pack_id=pack_id,
                inbox=self._inbox,
                checkpoints=plans,
            )
        else:
            (trial,) = trials
            payload = {
                "workload": workload,
                "optimizer": trial.optimizer,
                "hparams": trial.hyperparameters,
                "seed": trial.seed,
                "data_seed": spec.search.seed,
            }
            ref = options.remote(
                payload,
                trial_id=trial.id,
                attempt=attempts[0][1],
                inbox=self._inbox,
                checkpoint=plans[0] if plans else None,
            )
        self._in_flight[ref] = _InFlight(sweep_id, attempts, cpus, gpus, pack_id)
        for trial_id, attempt in attempts:
            self._by_trial[trial_id] = attempt

    def _track(self, spec: SweepCreate, sweep_id: int, trials: list[Trial]) -> None:
        """Register trials with the sweep's scheduler before they train (retries with their
        curves so far), waiting for the inbox so no report can arrive first."""
        again = [trial.id for trial in trials if trial.attempt > 0]
        curves: dict[int, dict[int, float]] = {}
        if again:
            with self._sessions() as session:
                curves = metric_curves(session, trial_ids=again, name=spec.objective.metric)
        ray.get(
            self._inbox.track.remote(
                sweep_id, [(trial.id, curves.get(trial.id, {})) for trial in trials]
            )
        )

    def _checkpoint_plans(
        self, spec: SweepCreate, sweep_id: int, trials: list[Trial]
    ) -> list[dict[str, Any]] | None:
        """Each trial's checkpoint file and interval (workers.tasks.CheckpointPlan), or None."""
        root = self._checkpoint_roots.get(sweep_id)
        every = spec.resources.checkpoint_every
        if root is None or every == 0:
            return None
        return [{"path": str(root / f"trial-{trial.id}.pt"), "every": every} for trial in trials]

    def _finish_sweeps(self) -> None:
        busy = {flight.sweep_id for flight in self._in_flight.values()}
        idle = [sweep_id for sweep_id in self._active if sweep_id not in busy]
        if not idle:
            return
        with self._sessions.begin() as session:
            counts: dict[int, dict[TrialStatus, int]] = defaultdict(dict)
            for sweep_id, status, count in session.execute(
                select(Trial.sweep_id, Trial.status, func.count())
                .where(Trial.sweep_id.in_(idle))
                .group_by(Trial.sweep_id, Trial.status)
            ):
                counts[sweep_id][status] = count
            for sweep_id in idle:
                by_status = counts[sweep_id]
                if any(by_status.get(status) for status in _OPEN):
                    continue
                sweep = session.get(Sweep, sweep_id)
                if sweep is None:
                    continue
                if sum(by_status.values()) < sweep.num_trials:
                    continue  # an adaptive searcher has more trials to ask for
                final, error = _outcome(session, sweep_id, by_status)
                finish_sweep(session, sweep, final, at=utcnow(), error=error)
                self._active.discard(sweep_id)
                self._searchers.pop(sweep_id, None)
