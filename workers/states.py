"""How a trial stands: one type for every layer, from a worker's result to the database's
column and what searchers and schedulers are told. Light on purpose (the standard library
only): the inbox actor imports it at start and must not wait for torch."""

from __future__ import annotations

import enum


class TrialState(enum.StrEnum):
    """Where a trial is in its life. DIVERGED trials stopped on a NaN or inf loss, STOPPED ones
    were stopped after training some (early stopping, a cancel), CANCELLED ones never trained
    (their sweep was cancelled or failed first). A worker ends its trials COMPLETED, DIVERGED
    or STOPPED; the service adds the rest."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    STOPPED = "stopped"
    FAILED = "failed"
    DIVERGED = "diverged"
    CANCELLED = "cancelled"

    def is_open(self) -> bool:
        """Still to run or running."""
        return self in OPEN

    def is_finished(self) -> bool:
        """Ended, one way or another."""
        return self not in OPEN

    def is_told(self) -> bool:
        """Ended in a way searchers and schedulers learn from (a cancelled trial never ran)."""
        return self in TOLD


OPEN = frozenset({TrialState.PENDING, TrialState.RUNNING})
"""The states of a trial that is not over."""
TOLD = frozenset({TrialState.COMPLETED, TrialState.STOPPED, TrialState.DIVERGED, TrialState.FAILED})
"""The ends searchers and schedulers hear of."""
