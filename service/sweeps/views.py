"""Read models assembled from several queries, shared by the API and the CLI."""

from __future__ import annotations

from sqlalchemy.orm import Session

from optisweep.service.sweeps.models import Sweep
from optisweep.service.sweeps.pareto import pareto_front
from optisweep.service.sweeps.repository import stored_spec
from optisweep.service.sweeps.schemas import SweepCreate, SweepRead
from optisweep.service.sweeps.statistics import (
    ALPHA,
    SINGLE_SEEDS,
    TEST,
    confidence_interval,
    p_value,
)
from optisweep.service.trials.models import TrialState
from optisweep.service.trials.ranking import best_objectives, leaderboard, leaderboard_by_mean
from optisweep.service.trials.repository import objective_points
from optisweep.service.trials.schemas import (
    Leaderboard,
    LeaderboardEntry,
    ObjectiveRead,
    ParetoPoint,
    trial_read,
)


def best_of(session: Session, sweeps: list[Sweep]) -> dict[int, float]:
    """Each sweep's leaderboard top (its best objective; by mean over repeats with repeats)."""
    best: dict[int, float] = {}
    plain: dict[bool, list[int]] = {True: [], False: []}
    for sweep in sweeps:
        spec = stored_spec(sweep)
        maximize = spec.objective.mode == "max"
        if spec.search.repeats > 1:
            ranked = leaderboard_by_mean(
                session, sweep_id=sweep.id, maximize=maximize, repeats=spec.search.repeats
            )
            if ranked:
                best[sweep.id] = ranked[0].mean
        else:
            plain[maximize].append(sweep.id)
    for maximize, sweep_ids in plain.items():
        best.update(best_objectives(session, sweep_ids=sweep_ids, maximize=maximize))
    return best


def sweep_read(
    sweep: Sweep, counts: dict[TrialState, int], best_objective: float | None = None
) -> SweepRead:
    """A sweep with its trial counts, every status present, and its best objective so far."""
    return SweepRead(
        id=sweep.id,
        name=sweep.name,
        status=sweep.status,
        num_trials=sweep.num_trials,
        trial_counts={status.value: counts.get(status, 0) for status in TrialState},
        spec=sweep.spec,
        lr_range=sweep.lr_range,
        error=sweep.error,
        packing=sweep.packing,
        best_objective=best_objective,
        created_at=sweep.created_at,
        updated_at=sweep.updated_at,
        finished_at=sweep.finished_at,
    )


def leaderboard_read(session: Session, sweep: Sweep, *, checkpoint_dir: str) -> Leaderboard:
    """The best trial of each optimizer family of a sweep, best first (checkpoint paths
    relative to ``checkpoint_dir``)."""
    spec = stored_spec(sweep)
    maximize = spec.objective.mode == "max"
    repeats = spec.search.repeats
    if repeats > 1:  # configurations ranked by their mean over repeats
        ranked = leaderboard_by_mean(session, sweep_id=sweep.id, maximize=maximize, repeats=repeats)
        leader = ranked[0].values if ranked else ()
        entries = []
        for rank, c in enumerate(ranked, start=1):
            p = None if rank == 1 else p_value(leader, c.values)
            entries.append(
                LeaderboardEntry(
                    rank=rank,
                    optimizer=c.trial.optimizer,
                    ranked_trials=c.family_count,
                    trial=trial_read(c.trial, checkpoint_dir=checkpoint_dir),
                    objective_mean=c.mean,
                    objective_std=c.std,
                    repeats=c.repeats,
                    objective_ci95=confidence_interval(c.values) if c.repeats > 1 else None,
                    p_value=p,
                    tied_with_leader=True if rank == 1 else (None if p is None else p >= ALPHA),
                    stopped_at=c.trial.epochs_run if c.stopped else None,
                )
            )
    else:
        entries = [
            LeaderboardEntry(
                rank=rank,
                optimizer=trial.optimizer,
                ranked_trials=count,
                trial=trial_read(trial, checkpoint_dir=checkpoint_dir),
                stopped_at=trial.epochs_run if trial.status == TrialState.STOPPED else None,
            )
            for rank, (trial, count) in enumerate(
                leaderboard(session, sweep_id=sweep.id, maximize=maximize), start=1
            )
        ]
    several = bool(spec.objective.also)
    return Leaderboard(
        sweep_id=sweep.id,
        metric=spec.objective.metric,
        mode=spec.objective.mode,
        epoch=spec.objective.summary,
        entries=entries,
        statistics=TEST if repeats > 1 else SINGLE_SEEDS,
        objectives=[ObjectiveRead(metric=o.metric, mode=o.mode) for o in spec.objective.objectives]
        if several
        else [],
        pareto_front=front_of(session, sweep.id, spec) if several else None,
    )


def front_of(session: Session, sweep_id: int, spec: SweepCreate) -> list[ParetoPoint]:
    """The Pareto front of a sweep over all its objectives, best by the primary first."""
    others = [objective.metric for objective in spec.objective.also]
    points = objective_points(session, sweep_id=sweep_id, others=others)
    modes = [objective.mode for objective in spec.objective.objectives]
    front = [points[i] for i in pareto_front([p.values for p in points], modes)]
    return [
        ParetoPoint(
            trial=p.number, trial_id=p.trial_id, optimizer=p.optimizer, values=list(p.values)
        )
        for p in front
    ]
