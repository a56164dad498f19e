"""The controller: a thin loop that owns nothing but time. Each tick it claims sweeps, records
what workers reported, collects range tests, dispatches trials and finishes sweeps, through
collaborators with one job each (``claims``, ``recorder``, ``range_tests``, ``dispatcher``,
``finishing``, ``faults``) sharing one ``ControllerState``.

Everything the controller knows lives in SQL, so a restarted controller picks up where the last
one stopped; a tick that fails (the database unreachable, say) is retried with a backoff, and
the sweeps' state in memory is rebuilt from the database.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import ray
from sqlalchemy.orm import Session, sessionmaker

from optisweep.service.code.store import CodeStore
from optisweep.service.controller.claims import Claims
from optisweep.service.controller.dispatcher import Dispatcher
from optisweep.service.controller.faults import Faults, describe
from optisweep.service.controller.finishing import Finisher
from optisweep.service.controller.inbox import Inbox
from optisweep.service.controller.inspection import WorkloadInspector
from optisweep.service.controller.packing import PackingPolicy
from optisweep.service.controller.range_tests import RangeTests
from optisweep.service.controller.ray_runtime import largest_node, warm_workers
from optisweep.service.controller.recorder import Recorder
from optisweep.service.controller.state import SERVICE_CONTROLLER, ControllerState
from optisweep.service.sweeps.models import Sweep
from optisweep.service.sweeps.repository import ACTIVE
from optisweep.service.trials import tallies

logger = logging.getLogger(__name__)

BACKOFF_SECONDS = (0.5, 30.0)
"""After a failed tick (the database unreachable, say) the next waits the first, doubling up
to the second with every further failure."""


VACUUM_SECONDS = 10.0
"""How often the controller reclaims the status deltas it folded (``tallies.vacuum``)."""
WARM_UP_READY_SECONDS = 60.0
"""``/readyz`` waits this long at most for the workers' warm-up."""


class Controller:
    """Runs sweeps on Ray: claim, record, dispatch, finish; one thread, one tick at a time."""

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
        code_store: CodeStore | None = None,
        inspect_timeout: float = 300.0,
    ) -> None:
        root = Path(checkpoint_dir).expanduser().resolve() if checkpoint_dir else None
        self.state = ControllerState(
            sessions=sessions, max_trials=max_trials, checkpoint_dir=root, code_store=code_store
        )
        self.faults = Faults(self.state)
        self.range_tests = RangeTests(self.state, self.faults)
        self.claims = Claims(
            self.state,
            self.faults,
            self.range_tests,
            controller_id=controller_id,
            lease=timedelta(seconds=lease_seconds),
            only_sweep=sweep_id,
        )
        self.recorder = Recorder(self.state, self.faults)
        packing = PackingPolicy(pack_memory_mb=pack_memory_mb, task_options=self.state.task_options)
        self.dispatcher = Dispatcher(
            self.state, self.faults, packing, capacity_seconds=claim_seconds
        )
        self.inspect = WorkloadInspector(self.state, packing, timeout=inspect_timeout)
        """Checks a sweep's workload on a worker (the server never runs a user's code)."""
        self.finisher = Finisher(self.state)
        self._poll_seconds = poll_seconds
        self._claim_seconds = claim_seconds
        self._last_claim = -math.inf
        self._last_vacuum = time.monotonic()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._warming: list[Any] = []
        self._warming_since = time.monotonic()
        self.failed_ticks = 0
        """Ticks that failed in a row (0 while the loop runs well)."""
        self.last_error: str | None = None
        """Why the last tick failed, while ticks fail."""

    def workers_warm(self) -> bool:
        """Whether the workers' warm-up (the training stack's imports, one worker per CPU) has
        finished; trials submitted before then wait for it, or share the CPUs with it."""
        if not self._warming:
            return True
        done, _ = ray.wait(self._warming, num_returns=len(self._warming), timeout=0)
        return len(done) == len(self._warming)

    def warm_up_overdue(self) -> bool:
        """Whether the warm-up has run longer than ``WARM_UP_READY_SECONDS`` (a busy cluster
        may hold its tasks back): readiness stops waiting for it then."""
        return time.monotonic() - self._warming_since > WARM_UP_READY_SECONDS

    @property
    def controller_id(self) -> str:
        """The name this controller claims sweeps under."""
        return self.claims.controller_id

    def _connect(self) -> None:
        if self.state.inbox is None:
            self.state.inbox = ray.remote(num_cpus=0)(Inbox).remote()

    def start(self) -> None:
        """Run the controller loop in a background thread (Ray must be initialised)."""
        self._connect()
        # One worker per CPU importing the training stack now (unless `optisweep serve` already
        # started them, before its own imports), so the first sweep does not wait for torch.
        self._warming = warm_workers()
        self._warming_since = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name="optisweep-controller", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop; trials in flight stay RUNNING in SQL and are recovered on restart."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @staticmethod
    def largest_node() -> tuple[float, float]:
        """The most CPUs and GPUs one alive node of the cluster offers (a sweep whose trials
        fit none is refused when submitted)."""
        return largest_node()

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
            self.last_error = describe(exc, self.state.checkpoint_dir)
            self.state.stale |= self.state.active
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
            if sweep_id not in self.state.active and not self.state.in_flight:
                with self.state.sessions() as session:
                    sweep = session.get(Sweep, sweep_id)
                    if sweep is None or sweep.status not in ACTIVE:
                        return

    def tick(self) -> None:
        """Claim sweeps, record what workers reported and which tasks ended, dispatch more."""
        now = time.monotonic()
        due = now - self._last_claim >= self._claim_seconds
        if self._wake.is_set() or self.state.stale or due:
            self._wake.clear()
            self._last_claim = now
            self.claims.claim()
        self.recorder.record(self._wait())
        with self.state.sessions.begin() as session:
            tallies.fold(session)  # the trials' status changes so far, counted
            engine = session.get_bind()
        if now - self._last_vacuum >= VACUUM_SECONDS:
            self._last_vacuum = now
            tallies.vacuum(engine.engine)
        self.range_tests.collect()
        self.dispatcher.dispatch()
        self.finisher.finish()
        self.faults.fail_faulted()

    def _wait(self) -> list[ray.ObjectRef[Any]]:
        """Tasks that finished, after waiting up to the poll interval for the first one."""
        refs = list(self.state.in_flight)
        if not refs:
            self._wake.wait(self._poll_seconds)
            return []
        ray.wait(refs, num_returns=1, timeout=self._poll_seconds)
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        return ready
