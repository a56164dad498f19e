"""Finishing sweeps: once no trial of a sweep is open or to come, how the sweep ended."""

from __future__ import annotations

from sqlalchemy.orm import Session

from optisweep.service.controller.state import ControllerState
from optisweep.service.db.base import utcnow
from optisweep.service.sweeps.models import Sweep, SweepStatus
from optisweep.service.sweeps.repository import finish_sweep
from optisweep.service.trials.models import TrialState
from optisweep.service.trials.queue import commonest_failure
from optisweep.service.trials.tallies import status_counts
from optisweep.workers.states import OPEN


def outcome(
    session: Session, sweep_id: int, by_status: dict[TrialState, int]
) -> tuple[SweepStatus, str | None]:
    """How a sweep whose trials all ended ends: FAILED when most of its trials failed, else
    COMPLETED; with any failed trial, a summary: how many failed and the commonest error."""
    failed, total = by_status.get(TrialState.FAILED, 0), sum(by_status.values())
    if not failed:
        return SweepStatus.COMPLETED, None
    commonest = commonest_failure(session, sweep_id=sweep_id)
    # The first line of an error: a traceback may follow it.
    summary = f": {commonest[0].splitlines()[0]}" if commonest and commonest[0] else ""
    if commonest and commonest[1] < failed:
        summary += f" (and {failed - commonest[1]} with other errors)"
    status = SweepStatus.FAILED if 2 * failed > total else SweepStatus.COMPLETED
    return status, f"{failed} of {total} trials failed{summary}"[:2000]


class Finisher:
    """Ends the sweeps with nothing left to run."""

    def __init__(self, state: ControllerState) -> None:
        self.state = state

    def finish(self) -> None:
        """Every sweep without tasks in flight, open trials or trials still to ask for ends."""
        busy = {flight.sweep_id for flight in self.state.in_flight.values()}
        idle = [sweep_id for sweep_id in self.state.active if sweep_id not in busy]
        if not idle:
            return
        with self.state.sessions.begin() as session:
            for sweep_id, by_status in status_counts(session, idle).items():
                if any(by_status.get(status) for status in OPEN):
                    continue
                sweep = session.get(Sweep, sweep_id)
                if sweep is None:
                    continue
                if sum(by_status.values()) < sweep.num_trials:
                    continue  # an adaptive searcher has more trials to ask for
                final, error = outcome(session, sweep_id, by_status)
                finish_sweep(session, sweep, final, at=utcnow(), error=error)
                self.state.active.discard(sweep_id)
                self.state.searchers.pop(sweep_id, None)
