"""Faults: what the database being down looks like, error messages fit to show users, and
one sweep's failing steps contained to that sweep (retried, then that sweep alone fails)."""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ray.exceptions import RayTaskError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from optisweep.service.controller.state import ControllerState
from optisweep.service.db.base import utcnow
from optisweep.service.sweeps.models import Sweep, SweepStatus
from optisweep.service.sweeps.repository import finish_sweep
from optisweep.service.trials.models import Trial
from optisweep.service.trials.repository import cancel_pending
from optisweep.workers.specs import TrainingError

logger = logging.getLogger(__name__)

MAX_SWEEP_FAULTS = 5
"""Times in a row one step of handling a sweep (starting it, submitting its tasks, telling its
searcher) may fail before the sweep fails with that error; other sweeps run on meanwhile."""

_ABSOLUTE_PATH = re.compile(r"(?<![\w.~])/(?:[^\s'\":,()\[\]]+/)*([^\s'\":,()\[\]/]+)")


def scrub_paths(message: str, root: Path | None) -> str:
    """``message`` without the server's file system: paths under ``root`` become relative to it,
    any other absolute path shrinks to its last component."""
    if root is not None:
        message = message.replace(f"{root}/", "").replace(str(root), ".")
    return _ABSOLUTE_PATH.sub(r"\1", message)


TRACE_CHARS = 20_000
"""The most of a failed attempt's traceback its trial keeps: all of it but for a runaway
one (a deep recursion), whose earliest whole lines go."""
_PERMANENT = (
    "ImportError",
    "ModuleNotFoundError",
    "SyntaxError",
    "NameError",
    "TypeError",
    "AttributeError",
)
"""Errors the same code raises on every try."""
_SHAPES = ("shape", "size mismatch", "must match the size", "dimension")
"""What a RuntimeError says when a model's shapes do not fit (a Linear fed the wrong width)."""


def cannot_pass_on_retry(error: str) -> bool:
    """Whether a failed attempt's error (``describe``'s text) is one the same code fails with
    again, whatever the try: an import, name, type or attribute error, or a shape mismatch."""
    first = error.split("\n", 1)[0]
    kind = first.split(":", 1)[0].strip()
    if kind in _PERMANENT:
        return True
    return kind == "RuntimeError" and any(word in first for word in _SHAPES)


def _whole_lines(trace: str) -> str:
    """``trace``, or (longer than TRACE_CHARS) its last whole lines that fit, marked cut."""
    if len(trace) <= TRACE_CHARS:
        return trace
    kept = trace[-TRACE_CHARS:]
    return "[... earlier frames cut]\n" + kept[kept.find("\n") + 1 :]


def describe(exc: BaseException, root: Path | None = None) -> str:
    """A trial's error for users: the exception raised in the worker, without Ray's wrapping
    (and without the server's paths)."""
    if isinstance(exc, RayTaskError) and isinstance(exc.cause, TrainingError):
        text = f"{exc.cause}\n\n{_whole_lines(exc.cause.trace)}".strip()
    elif isinstance(exc, RayTaskError) and exc.cause is not None:
        text = f"{type(exc.cause).__name__}: {exc.cause}".strip()
    else:
        text = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".strip()
    return scrub_paths(text, root)


def database_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot be reached (no sweep is to blame for it)."""
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


class Faults:
    """Counts each sweep's failing steps; fails a sweep once one step failed too often."""

    def __init__(self, state: ControllerState) -> None:
        self.state = state
        self.counts: Counter[tuple[int, str]] = Counter()
        """(sweep id, step) -> how many times in a row that step failed for that sweep."""
        self.failing: dict[int, str] = {}
        """Sweeps to fail at the end of this tick (a step failed too often), with why."""

    @contextmanager
    def isolated(self, sweep_id: int, step: str) -> Iterator[None]:
        """Contain a failure of one step for one sweep: the database being unreachable goes
        on up (the tick is retried); anything else is logged, retried at the next tick, and
        after ``MAX_SWEEP_FAULTS`` failures in a row fails that sweep alone."""
        try:
            yield
        except Exception as exc:
            if database_unreachable(exc):
                raise
            self.counts[(sweep_id, step)] += 1
            count = self.counts[(sweep_id, step)]
            logger.warning("sweep %s: %s failed (%d in a row)", sweep_id, step, count, exc_info=exc)
            self.state.stale.add(sweep_id)  # what it holds in memory is rebuilt from the database
            if count >= MAX_SWEEP_FAULTS:
                why = f"{step} failed {count} times: {describe(exc, self.state.checkpoint_dir)}"
                self.failing.setdefault(sweep_id, why)
        else:
            self.counts.pop((sweep_id, step), None)

    def failed_to_start(self, session: Session, sweep: Sweep, exc: Exception) -> None:
        """Adopting ``sweep`` raised ``exc``: bad stored data fails it at once, anything else
        after MAX_SWEEP_FAULTS tries; the database being unreachable goes on up."""
        if database_unreachable(exc):
            raise exc
        logger.error("sweep %s could not start", sweep.id, exc_info=exc)
        self.state.active.discard(sweep.id)
        message = f"could not start: {describe(exc, self.state.checkpoint_dir)}"
        fault = (sweep.id, "starting")
        self.counts[fault] += 1
        if isinstance(exc, SQLAlchemyError | ValueError) or self.counts[fault] >= MAX_SWEEP_FAULTS:
            del self.counts[fault]
            finish_sweep(session, sweep, SweepStatus.FAILED, at=utcnow(), error=message)
            cancel_pending(session, Trial.sweep_id == sweep.id, at=utcnow(), why=message)

    def fail_faulted(self) -> None:
        """Fail the sweeps that failed a step too often: their trials that never started are
        cancelled, the ones in flight asked to stop; what their trials recorded stays."""
        if not self.failing:
            return
        with self.state.sessions.begin() as session:
            for sweep_id, why in self.failing.items():
                logger.error("sweep %s failed: %s", sweep_id, why)
                sweep = session.get(Sweep, sweep_id)
                if sweep is not None:
                    finish_sweep(session, sweep, SweepStatus.FAILED, at=utcnow(), error=why)
                    cancel_pending(session, Trial.sweep_id == sweep_id, at=utcnow(), why=why)
        for sweep_id in self.failing:
            for key in [key for key in self.counts if key[0] == sweep_id]:
                del self.counts[key]
            self.state.release(sweep_id)
        self.failing.clear()
