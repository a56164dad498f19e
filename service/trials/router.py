"""/trials: one trial and its learning curves."""

from __future__ import annotations

from itertools import groupby

from fastapi import APIRouter

from optisweep.service.deps import SessionDep, SettingsDep
from optisweep.service.routing import NOT_FOUND, StrictRoute
from optisweep.service.trials.repository import get_trial, list_events, list_metrics
from optisweep.service.trials.schemas import (
    MetricSeries,
    TrialEventRead,
    TrialMetrics,
    TrialRead,
    trial_read,
)

router = APIRouter(prefix="/trials", tags=["trials"], route_class=StrictRoute)


@router.get("/{trial_id}", responses=NOT_FOUND)
def read_trial(trial_id: int, session: SessionDep, settings: SettingsDep) -> TrialRead:
    """One trial."""
    return trial_read(get_trial(session, trial_id), checkpoint_dir=settings.checkpoint_dir)


@router.get("/{trial_id}/events", responses=NOT_FOUND)
def read_events(trial_id: int, session: SessionDep) -> list[TrialEventRead]:
    """The trial's status history, oldest first: each start (where), end (why) and retry."""
    get_trial(session, trial_id)
    return [
        TrialEventRead.model_validate(event) for event in list_events(session, trial_id=trial_id)
    ]


@router.get("/{trial_id}/metrics", responses=NOT_FOUND)
def read_metrics(trial_id: int, session: SessionDep) -> TrialMetrics:
    """Every metric the trial reported, one series per metric over its epochs."""
    get_trial(session, trial_id)
    metrics = sorted(list_metrics(session, trial_id=trial_id), key=lambda m: (m.name, m.step))
    series = []
    for name, rows in groupby(metrics, key=lambda m: m.name):
        points = list(rows)
        series.append(
            MetricSeries(
                name=name, steps=[m.step for m in points], values=[m.value for m in points]
            )
        )
    return TrialMetrics(trial_id=trial_id, series=series)
