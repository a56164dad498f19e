"""Warm start from the database: the earlier sweeps a sweep names (``search.warm_start``),
checked when it is submitted, their finished trials read for its searcher, and what its
report says of them. Which trials fit is ``optisweep.service.search.warm``'s one rule."""

from __future__ import annotations

import threading
from datetime import datetime

from cachetools import LRUCache
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from optisweep.service.errors import NotFoundError, SpecError
from optisweep.service.search.adaptive import shares_axes
from optisweep.service.search.warm import EarlierTrial, sort_fitting
from optisweep.service.sweeps.models import Sweep
from optisweep.service.sweeps.repository import stored_spec
from optisweep.service.sweeps.schemas import SweepCreate
from optisweep.service.trials.models import Trial
from optisweep.service.trials.repository import final_metrics
from optisweep.workers.states import TOLD

WARM_TRIALS_PER_SWEEP = 5000
"""The most finished trials read from one earlier sweep (the best first)."""


def _objectives(spec: SweepCreate) -> str:
    summary = spec.objective.summary
    ranked = ", ".join(f"{o.metric} ({o.mode})" for o in spec.objective.objectives)
    return f"{ranked}, {summary} epoch"


def check_warm_start(session: Session, spec: SweepCreate, *, project_id: int) -> None:
    """NotFoundError for an earlier sweep that is not in the project (another project's is
    hidden too); SpecError naming the sweep for one whose objectives differ or whose families
    this sweep does not search."""
    warm = spec.search.warm_start
    if warm is None:
        return
    for index, sweep_id in enumerate(warm.sweeps):
        sweep = session.get(Sweep, sweep_id)
        if sweep is None or sweep.project_id != project_id:
            raise NotFoundError(f"search.warm_start.sweeps.{index}: sweep {sweep_id} not found")
        earlier = stored_spec(sweep)
        field = f"search.warm_start.sweeps.{index}"
        if _objectives(earlier) != _objectives(spec):
            raise SpecError(
                f"sweep {sweep_id} ranks trials by {_objectives(earlier)}, this sweep by "
                f"{_objectives(spec)}: its values cannot be compared",
                field=field,
            )
        shared = set(earlier.space.optimizers) & set(spec.space.optimizers)
        if not shared:
            raise SpecError(
                f"sweep {sweep_id} tuned {', '.join(earlier.space.optimizers)}, none of which "
                f"this sweep searches ({', '.join(spec.space.optimizers)})",
                field=field,
            )


def earlier_trials(
    session: Session, spec: SweepCreate, *, before: datetime | None = None
) -> list[EarlierTrial]:
    """The finished trials of the sweeps ``spec`` warm-starts from (those that ended before
    ``before``, so a restarted sweep reads the same), best first per sweep."""
    warm = spec.search.warm_start
    if warm is None:
        return []
    workload = spec.workload.model_dump(mode="json")
    others = [objective.metric for objective in spec.objective.also]
    found: list[EarlierTrial] = []
    for sweep_id in warm.sweeps:
        sweep = session.get(Sweep, sweep_id)
        if sweep is None:  # deleted since: nothing to learn from it
            continue
        same = stored_spec(sweep).workload.model_dump(mode="json") == workload
        order = (
            Trial.objective_value.desc() if spec.objective.mode == "max" else Trial.objective_value
        )
        statement = (
            select(Trial)
            .where(Trial.sweep_id == sweep_id, Trial.status.in_(TOLD))
            .order_by(order.nulls_last(), Trial.number)
            .limit(WARM_TRIALS_PER_SWEEP)
        )
        if before is not None:
            statement = statement.where(Trial.finished_at <= before)
        trials = list(session.scalars(statement))
        finals = (
            final_metrics(
                session, sweep_id=sweep_id, names=others, trial_ids=[t.id for t in trials]
            )
            if others
            else {}
        )
        found.extend(
            EarlierTrial(
                sweep_id=sweep_id,
                number=t.number,
                optimizer=t.optimizer,
                hyperparameters=t.hyperparameters,
                settings=t.settings or {},
                outcome=t.status,
                objective=t.objective,
                also=tuple(finals.get(t.id, {}).get(name) for name in others),
                same_workload=same,
            )
            for t in trials
        )
    return found


class WarmSource(BaseModel):
    """What a sweep learnt from one earlier sweep."""

    sweep_id: int
    finished: int
    """Its finished trials read (those that ended before this sweep was submitted)."""
    used: int
    """Those that fit this sweep's space and workload: told to its searcher (or, for grid and
    random search, eligible to be trained again first)."""
    left_out: dict[str, int]
    """Why the others were not used: reason -> how many."""


class WarmStartRead(BaseModel):
    """Where a warm-started sweep's knowledge came from, sweep by sweep."""

    sources: list[WarmSource]
    retrained: list[int]
    """This sweep's trials whose configuration an earlier sweep measured (grid and random
    search train the best of them again first); each trial's ``origin`` names which."""
    summary: str


_SOURCES: LRUCache[tuple[int, datetime], list[WarmSource]] = LRUCache(maxsize=1024)
_SOURCES_LOCK = threading.Lock()


def warm_start_read(session: Session, sweep: Sweep, spec: SweepCreate) -> WarmStartRead | None:
    """What the sweep's searcher learnt from earlier sweeps, for its report; None without a
    warm start."""
    if spec.search.warm_start is None:
        return None
    key = (sweep.id, sweep.created_at)
    with _SOURCES_LOCK:
        sources = _SOURCES.get(key)
    if sources is None:  # read and sorted once per sweep: trials that ended before it
        sources = _sources(session, sweep, spec)
        with _SOURCES_LOCK:
            _SOURCES[key] = sources
    retrained = list(
        session.scalars(
            select(Trial.number)
            .where(Trial.sweep_id == sweep.id, Trial.origin.is_not(None))
            .order_by(Trial.number)
        )
    )
    return WarmStartRead(sources=sources, retrained=retrained, summary=_summary(sources, retrained))


def _sources(session: Session, sweep: Sweep, spec: SweepCreate) -> list[WarmSource]:
    """Per earlier sweep: its finished trials read, how many fit, why the others did not."""
    assert spec.search.warm_start is not None
    earlier = earlier_trials(session, spec, before=sweep.created_at)
    sorted_ = sort_fitting(spec.space, earlier, shared=shares_axes(spec.search.algorithm))
    sources = []
    for sweep_id in spec.search.warm_start.sweeps:
        finished = sum(1 for t in earlier if t.sweep_id == sweep_id)
        counts = sorted_.left_out.get(sweep_id)
        left_out = dict(counts.most_common()) if counts else {}
        used = finished - sum(left_out.values())
        sources.append(
            WarmSource(sweep_id=sweep_id, finished=finished, used=used, left_out=left_out)
        )
    return sources


def _summary(sources: list[WarmSource], retrained: list[int]) -> str:
    """One sentence: what was used from each earlier sweep, what was left out and why."""
    parts = []
    for source in sources:
        text = f"{source.used} of sweep {source.sweep_id}'s {source.finished} finished trials"
        if source.left_out:
            reasons = ", ".join(f"{n} {why}" for why, n in source.left_out.items())
            text += f" ({reasons})"
        parts.append(text)
    sentence = f"Warm start: learnt from {'; '.join(parts)}."
    if retrained:
        sentence += (
            f" Trained again first: {len(retrained)} of their best configurations "
            f"(trials {', '.join(map(str, retrained))})."
        )
    return sentence
