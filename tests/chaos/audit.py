"""What a sweep's trials should have recorded, against what the database holds."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

from sqlalchemy import func, select

from optisweep.service.db.session import make_engine
from optisweep.service.sweeps.models import Sweep
from optisweep.service.trials.models import Metric, Trial, TrialEvent, TrialState

ENDED = {"completed", "stopped", "diverged", "failed", "cancelled"}


@dataclass(frozen=True)
class Audit:
    """One sweep's books: epochs its trials say they ran, and what is stored."""

    sweep_id: int
    status: str
    error: str | None
    trials: int
    statuses: dict[str, int]
    expected: int
    """Epochs the trials should have recorded: every epoch for completed trials, the epochs
    they say they ran for the others."""
    found: int
    """Of those, the epochs stored with every metric."""
    lost: int
    duplicated: int
    """Epochs stored beyond what a trial ran, and a trial's end recorded more than once for
    one attempt."""

    @property
    def completed(self) -> bool:
        """The sweep completed and every trial ran to its end (completed or diverged)."""
        ends = set(self.statuses)
        return self.status == "completed" and ends <= {"completed", "diverged"} and self.trials > 0


def audit_sweep(database_url: str, sweep_id: int, *, epochs: int) -> Audit:
    """The audit of one sweep whose workload runs ``epochs`` epochs."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            sweep = connection.execute(
                select(Sweep.status, Sweep.error).where(Sweep.id == sweep_id)
            ).one()
            trials = connection.execute(
                select(Trial.id, Trial.status, Trial.epochs_run).where(Trial.sweep_id == sweep_id)
            ).all()
            ids = [t.id for t in trials]
            rows = connection.execute(
                select(Metric.trial_id, Metric.step, func.count())
                .where(Metric.trial_id.in_(ids))
                .group_by(Metric.trial_id, Metric.step)
            ).all()
            names = connection.execute(
                select(func.count(func.distinct(Metric.name))).where(Metric.trial_id.in_(ids))
            ).scalar_one()
            ends = connection.execute(
                select(TrialEvent.trial_id, TrialEvent.attempt, TrialEvent.status)
                .where(TrialEvent.trial_id.in_(ids))
                .order_by(TrialEvent.id)
            ).all()
    finally:
        engine.dispose()
    stored: dict[int, dict[int, int]] = defaultdict(dict)
    for trial_id, step, count in rows:
        stored[trial_id][step] = count
    expected = found = duplicated = 0
    for trial in trials:
        ran = epochs if trial.status == TrialState.COMPLETED else trial.epochs_run
        steps = stored[trial.id]
        expected += ran
        found += sum(1 for step in range(1, ran + 1) if steps.get(step) == names)
        duplicated += sum(1 for step in steps if step > ran or step < 1)
    terminal = Counter(
        (trial_id, attempt) for trial_id, attempt, status in ends if status.value in ENDED
    )
    duplicated += sum(count - 1 for count in terminal.values() if count > 1)
    return Audit(
        sweep_id=sweep_id,
        status=sweep.status.value,
        error=sweep.error,
        trials=len(trials),
        statuses=dict(Counter(t.status.value for t in trials)),
        expected=expected,
        found=found,
        lost=expected - found,
        duplicated=duplicated,
    )
