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
    resumed_epoch: int = 0
    """The attempt continues from a checkpoint of this epoch (0: from scratch)."""


@dataclass(frozen=True)
class EpochReport:
    """An attempt of a trial finished an epoch with these metrics."""

    trial_id: int
    attempt: int
    epoch: int
    metrics: dict[str, float]
    checkpoint: str | None = None
    """The checkpoint written after this epoch, if one was."""


class Inbox:
    """Collects worker events until the controller drains them; tells workers when to stop.

    Runs as a Ray actor (zero CPUs) owned by the controller: workers hold no database
    connections, and every write happens in the controller, in batches.
    """

    def __init__(self) -> None:
        self._events: list[Started | EpochReport] = []
        self._stop: set[int] = set()

    def started(
        self, trial_id: int, attempt: int, node_id: str, device: str, resumed_epoch: int = 0
    ) -> bool:
        """Record that an attempt began; True if the trial should stop at once."""
        self._events.append(
            Started(trial_id, attempt, node_id, device, resumed_epoch=resumed_epoch)
        )
        return trial_id in self._stop

    def report(
        self,
        trial_id: int,
        attempt: int,
        epoch: int,
        metrics: dict[str, float],
        checkpoint: str | None = None,
    ) -> bool:
        """Record an epoch's metrics; True if the trial should stop before its next epoch."""
        self._events.append(EpochReport(trial_id, attempt, epoch, dict(metrics), checkpoint))
        return trial_id in self._stop

    def started_pack(
        self, trials: list[tuple[int, int, int]], node_id: str, device: str, pack_id: str
    ) -> list[int]:
        """Record that a pack's (trial id, attempt, resumed epoch)s began; the ids to stop."""
        for trial_id, attempt, resumed in trials:
            self._events.append(Started(trial_id, attempt, node_id, device, pack_id, resumed))
        return [trial_id for trial_id, _, _ in trials if trial_id in self._stop]

    def report_pack(
        self, epoch: int, reports: list[tuple[int, int, dict[str, float], str | None]]
    ) -> list[int]:
        """Record one epoch of a pack's (trial id, attempt, metrics, checkpoint); ids to stop."""
        for trial_id, attempt, metrics, checkpoint in reports:
            self._events.append(EpochReport(trial_id, attempt, epoch, dict(metrics), checkpoint))
        return [trial_id for trial_id, _, _, _ in reports if trial_id in self._stop]

    def stop(self, trial_ids: list[int]) -> None:
        """Ask these trials to stop at their next report."""
        self._stop.update(trial_ids)

    def drain(self) -> list[Started | EpochReport]:
        """Every event since the last drain, in arrival order."""
        events, self._events = self._events, []
        return events
