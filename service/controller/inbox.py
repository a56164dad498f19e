"""The inbox actor: workers report to it through Ray, the controller drains it in batches."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Started:
    """An attempt of a trial began on a node."""

    trial_id: int
    attempt: int
    node_id: str
    device: str
    pack_id: str | None = None


@dataclass(frozen=True)
class EpochReport:
    """An attempt of a trial finished an epoch with these metrics."""

    trial_id: int
    attempt: int
    epoch: int
    metrics: dict[str, float]


class Inbox:
    """Collects worker events until the controller drains them; tells workers when to stop.

    Runs as a Ray actor (zero CPUs) owned by the controller: workers hold no database
    connections, and every write happens in the controller, in batches.
    """

    def __init__(self) -> None:
        self._events: list[Started | EpochReport] = []
        self._stop: set[int] = set()

    def started(self, trial_id: int, attempt: int, node_id: str, device: str) -> bool:
        """Record that an attempt began; True if the trial should stop at once."""
        self._events.append(Started(trial_id, attempt, node_id, device))
        return trial_id in self._stop

    def report(self, trial_id: int, attempt: int, epoch: int, metrics: dict[str, float]) -> bool:
        """Record an epoch's metrics; True if the trial should stop before its next epoch."""
        self._events.append(EpochReport(trial_id, attempt, epoch, dict(metrics)))
        return trial_id in self._stop

    def started_pack(
        self, trials: list[tuple[int, int]], node_id: str, device: str, pack_id: str
    ) -> list[int]:
        """Record that a pack's (trial id, attempt)s began; the trial ids that should stop."""
        for trial_id, attempt in trials:
            self._events.append(Started(trial_id, attempt, node_id, device, pack_id))
        return [trial_id for trial_id, _ in trials if trial_id in self._stop]

    def report_pack(
        self, epoch: int, reports: list[tuple[int, int, dict[str, float]]]
    ) -> list[int]:
        """Record one epoch of a pack's (trial id, attempt, metrics); the trial ids to stop."""
        for trial_id, attempt, metrics in reports:
            self._events.append(EpochReport(trial_id, attempt, epoch, dict(metrics)))
        return [trial_id for trial_id, _, _ in reports if trial_id in self._stop]

    def stop(self, trial_ids: list[int]) -> None:
        """Ask these trials to stop at their next report."""
        self._stop.update(trial_ids)

    def drain(self) -> list[Started | EpochReport]:
        """Every event since the last drain, in arrival order."""
        events, self._events = self._events, []
        return events
