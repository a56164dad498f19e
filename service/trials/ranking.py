"""How a sweep's trials rank: its ranked trials in objective order (and thinned by trial
number for charts), each sweep's best objective, and the leaderboard of each family's best,
by trial or by mean over repeats; all read from indexes and the status tallies, so they stay
fast on sweeps of a million trials."""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select, union_all
from sqlalchemy.orm import Session

from optisweep.service.db.base import FloatKind
from optisweep.service.trials.models import RANKED, Trial, TrialState
from optisweep.service.trials.tallies import ranked_counts


def ranked_trials(sweep_id: int, *, maximize: bool) -> Select[Trial]:
    """The sweep's ranked trials (completed or stopped, finite objective), best first."""
    value = Trial.objective_value
    return (
        select(Trial)
        .where(
            Trial.sweep_id == sweep_id,
            Trial.status.in_(RANKED),
            Trial.objective_kind == FloatKind.FINITE,
            value.is_not(None),  # implied; it lets an index scan skip the unfinished trials
        )
        .order_by(value.desc() if maximize else value.asc(), Trial.id)
    )


def every_kth(
    session: Session, statement: Select[Any], *, sweep_id: int, stride: int
) -> Select[Any]:
    """``statement`` kept to the sweep's trials whose number is a multiple of ``stride``: the
    numbers listed, so each is an index lookup instead of a scan of every trial."""
    if stride <= 1:
        return statement
    last = session.scalar(select(func.max(Trial.number)).where(Trial.sweep_id == sweep_id))
    return statement.where(Trial.number.in_(range(0, (last or 0) + 1, stride)))


def best_objectives(
    session: Session, *, sweep_ids: Iterable[int], maximize: bool
) -> dict[int, float]:
    """Each sweep's best final objective among its ranked trials (sweeps without one absent);
    one query for all these sweeps, which share the direction ``maximize``: each sweep's
    first ranked trial, read from its objective index, not a scan of its trials."""
    value = Trial.objective_value
    bests = [
        ranked_trials(sweep_id, maximize=maximize)
        .with_only_columns(Trial.sweep_id, value)
        .order_by(None)  # the value alone (no tie-break): the index's own order, read once
        .order_by(value.desc() if maximize else value.asc())
        .limit(1)
        .subquery()
        for sweep_id in sweep_ids
    ]
    if not bests:
        return {}
    rows = session.execute(union_all(*(select(best) for best in bests)))
    return {sweep_id: float(value) for sweep_id, value in rows if value is not None}


def leaderboard(session: Session, *, sweep_id: int, maximize: bool) -> list[tuple[Trial, int]]:
    """The best trial of each optimizer family with its family's ranked-trial count, best first.

    Fidelity first: a family is represented by its best trial that ran every epoch
    (completed) where it has one, and families whose trials were all stopped early rank after
    every family with a completed one. Two indexed lookups per family at most (trials on
    (sweep_id, optimizer, objective_value)) and the counts from the status tallies, so it
    stays fast on sweeps of a million trials.
    """
    ranked = ranked_trials(sweep_id, maximize=maximize)
    best = []
    for family, count in sorted(ranked_counts(session, sweep_id).items()):
        scoped = ranked.where(Trial.optimizer == family)
        full = scoped.where(Trial.status == TrialState.COMPLETED)
        trial = session.scalars(full.limit(1)).first() or session.scalars(scoped.limit(1)).first()
        if trial is not None:
            best.append((trial, int(count)))
    best.sort(
        key=lambda entry: (
            entry[0].status != TrialState.COMPLETED,
            -(entry[0].objective_value or 0.0) if maximize else (entry[0].objective_value or 0.0),
            entry[0].id,
        )
    )
    return best


@dataclass(frozen=True)
class RankedConfiguration:
    """One configuration trained over several seeds: a representative trial and its spread."""

    trial: Trial
    """The repeat with the lowest number (all repeats share the hyperparameters)."""
    mean: float
    std: float | None
    """Sample standard deviation over the repeats with a finite objective (None for one)."""
    repeats: int
    """How many repeats finished with a finite objective."""
    family_count: int
    values: tuple[float, ...] = ()
    """The objective of each of those repeats, in trial-number order."""
    stopped: bool = False
    """Some repeat was stopped early (did not run every epoch): it ranks after the
    configurations whose repeats all did."""


def leaderboard_by_mean(
    session: Session, *, sweep_id: int, maximize: bool, repeats: int
) -> list[RankedConfiguration]:
    """The best configuration of each family by its mean objective over repeats, best first.

    Trial ``number // repeats`` is a trial's configuration; repeats that diverged or failed
    do not count, as in the per-trial leaderboard.
    """
    trials = session.scalars(
        select(Trial)
        .where(
            Trial.sweep_id == sweep_id,
            Trial.status.in_(RANKED),
            Trial.objective_kind == FloatKind.FINITE,
        )
        .order_by(Trial.number)
    )
    groups: dict[int, list[Trial]] = {}
    for trial in trials:
        groups.setdefault(trial.number // repeats, []).append(trial)
    by_family: dict[str, list[RankedConfiguration]] = {}
    for members in groups.values():
        values = tuple(float(t.objective_value or 0.0) for t in members)
        configuration = RankedConfiguration(
            trial=members[0],
            mean=statistics.fmean(values),
            std=statistics.stdev(values) if len(values) > 1 else None,
            repeats=len(values),
            family_count=0,
            values=values,
            stopped=any(t.status != TrialState.COMPLETED for t in members),
        )
        by_family.setdefault(members[0].optimizer, []).append(configuration)

    def rank(c: RankedConfiguration) -> tuple[bool, float, int]:  # fidelity first
        return c.stopped, -c.mean if maximize else c.mean, c.trial.number

    best = [
        dataclasses.replace(min(family, key=rank), family_count=len(family))
        for family in by_family.values()
    ]
    return sorted(best, key=rank)
