"""Read models assembled from several queries, shared by the API and the CLI."""

from __future__ import annotations

from sqlalchemy.orm import Session

from service.sweeps.models import Sweep
from service.sweeps.schemas import SweepRead
from service.trials.models import TrialStatus
from service.trials.repository import leaderboard, leaderboard_by_mean
from service.trials.schemas import Leaderboard, LeaderboardEntry, trial_read


def sweep_read(sweep: Sweep, counts: dict[TrialStatus, int]) -> SweepRead:
    """A sweep with its trial counts, every status present."""
    return SweepRead(
        id=sweep.id,
        name=sweep.name,
        status=sweep.status,
        num_trials=sweep.num_trials,
        trial_counts={status.value: counts.get(status, 0) for status in TrialStatus},
        spec=sweep.spec,
        lr_range=sweep.lr_range,
        error=sweep.error,
        created_at=sweep.created_at,
        updated_at=sweep.updated_at,
        finished_at=sweep.finished_at,
    )


def leaderboard_read(session: Session, sweep: Sweep, *, checkpoint_dir: str) -> Leaderboard:
    """The best trial of each optimizer family of a sweep, best first (checkpoint paths
    relative to ``checkpoint_dir``)."""
    objective = sweep.spec["objective"]
    maximize = objective["mode"] == "max"
    repeats = int(sweep.spec.get("search", {}).get("repeats", 1))
    if repeats > 1:  # configurations ranked by their mean over repeats
        entries = [
            LeaderboardEntry(
                rank=rank,
                optimizer=c.trial.optimizer,
                ranked_trials=c.family_count,
                trial=trial_read(c.trial, checkpoint_dir=checkpoint_dir),
                objective_mean=c.mean,
                objective_std=c.std,
                repeats=c.repeats,
            )
            for rank, c in enumerate(
                leaderboard_by_mean(session, sweep_id=sweep.id, maximize=maximize, repeats=repeats),
                start=1,
            )
        ]
    else:
        entries = [
            LeaderboardEntry(
                rank=rank,
                optimizer=trial.optimizer,
                ranked_trials=count,
                trial=trial_read(trial, checkpoint_dir=checkpoint_dir),
            )
            for rank, (trial, count) in enumerate(
                leaderboard(session, sweep_id=sweep.id, maximize=maximize), start=1
            )
        ]
    return Leaderboard(
        sweep_id=sweep.id, metric=objective["metric"], mode=objective["mode"], entries=entries
    )
