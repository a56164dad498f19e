"""Hyperparameter importance for the sweep page, by Optuna's evaluators (cached per sweep and
finished-trial count: fANOVA takes seconds on large sweeps, and a finished set does not change)."""

from __future__ import annotations

import math
import threading
from datetime import datetime
from typing import Annotated, Any, Literal

from cachetools import LRUCache
from fastapi import APIRouter, Query

from optisweep.optimizers.schemas import short_repr
from optisweep.service.dashboard import queries
from optisweep.service.dashboard.schemas import Importance
from optisweep.service.deps import SessionDep
from optisweep.service.errors import InputError
from optisweep.service.routing import NOT_FOUND, StrictRoute
from optisweep.service.sweeps.repository import get_sweep, stored_spec
from optisweep.service.trials.models import Trial
from optisweep.service.trials.ranking import every_kth, ranked_trials
from optisweep.service.trials.tallies import ranked_counts

router = APIRouter(prefix="/sweeps", tags=["dashboard"], route_class=StrictRoute)

_CACHE: LRUCache[tuple[int, datetime, int, int, str, str | None], Importance] = LRUCache(256)
"""(sweep, its creation, finished trials, max_trials, method, family) -> importance."""
_CACHE_LOCK = threading.Lock()


@router.get("/{sweep_id}/importance", responses=NOT_FOUND)
def importance(
    sweep_id: int,
    session: SessionDep,
    method: Literal["ped-anova", "fanova"] = "ped-anova",
    optimizer: Annotated[
        str | None, Query(description="Within this family (its lr and betas); default: across.")
    ] = None,
    max_trials: Annotated[int, Query(ge=10, le=20_000)] = 2000,
) -> Importance:
    """How much each hyperparameter matters for the objective, by Optuna's evaluators.

    Across families: the family, log lr, and beta1/beta2 only when every trial's family has
    them (as Optuna does with conditional parameters: a beta that some families lack would
    otherwise stand in for the family). Within one family (``optimizer``): its log lr and the
    betas it has. ``ped-anova`` (PED-ANOVA, fast: tens of ms for thousands of trials) or
    ``fanova`` (a random forest, seconds; at most 500 trials). Uses up to ``max_trials``
    finished trials (every k-th by number when there are more); parameters that did not vary
    are left out. Results are cached until more trials finish. Needs at least 4 trials.
    """

    sweep = get_sweep(session, sweep_id)
    metric, maximize = queries.objective(sweep)
    families_searched = stored_spec(sweep).space.optimizers
    if optimizer is not None and optimizer not in families_searched:
        raise InputError(
            f"optimizer {short_repr(optimizer)} is not searched by sweep {sweep_id} "
            f"(it searches {', '.join(families_searched)})",
            loc=("query", "optimizer"),
        )
    finished = ranked_trials(sweep_id, maximize=maximize)
    ranked = ranked_counts(session, sweep_id)  # from the tallies: a few rows at any size
    if optimizer is not None:
        finished = finished.where(Trial.optimizer == optimizer)
    count = ranked.get(optimizer, 0) if optimizer is not None else sum(ranked.values())
    if method == "fanova":
        max_trials = min(max_trials, 500)
    key = (sweep_id, sweep.created_at, count, max_trials, method, optimizer)
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
    if cached is not None:
        return cached
    stride = max(1, math.ceil(count / max_trials))  # every stride-th trial, thinned in SQL
    finished = every_kth(session, finished, sweep_id=sweep_id, stride=stride)
    trials = list(session.scalars(finished))
    result = Importance(
        metric=metric, method=method, optimizer=optimizer, trials=len(trials), importances={}
    )
    if len(trials) >= 4:
        result.importances = estimate(trials, method=method, maximize=maximize)
    with _CACHE_LOCK:
        _CACHE[key] = result
    return result


def estimate(trials: list[Trial], *, method: str, maximize: bool) -> dict[str, float]:
    """Importance of the family, log lr, beta1/beta2 (when every trial's family has them) and
    the searched settings (batch size, clip norm, schedule kind, warm-up) among these trials'
    objectives; parameters that did not vary are left out."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution
    from optuna.importance import FanovaImportanceEvaluator, PedAnovaImportanceEvaluator

    columns: dict[str, list[Any]] = {
        "optimizer": [trial.optimizer for trial in trials],
        "lr": [float(trial.hyperparameters["lr"]) for trial in trials],
    }
    betas = [queries.betas(trial.optimizer, trial.hyperparameters) for trial in trials]
    for index, name in enumerate(("beta1", "beta2")):
        values = [pair[index] for pair in betas]
        if all(value is not None for value in values):
            columns[name] = values
    settings = [trial.settings or {} for trial in trials]
    for name in ("batch_size", "clip_norm", "schedule"):  # searched settings, as categories
        if all(name in setting for setting in settings):
            columns[name] = [
                str(setting[name]["kind"] if name == "schedule" else setting[name])
                for setting in settings
            ]
    warmups = [(setting.get("schedule") or {}).get("warmup_steps") for setting in settings]
    if all(isinstance(warmup, int) for warmup in warmups):
        columns["warmup_steps"] = [float(warmup or 0) for warmup in warmups]  # a number, as lr
    distributions: dict[str, Any] = {}
    for name, column in columns.items():
        if len(set(column)) < 2:  # did not vary: nothing to attribute
            continue
        if name in ("optimizer", "batch_size", "clip_norm", "schedule"):
            distributions[name] = CategoricalDistribution(sorted(set(column)))
        else:
            low, high = min(column), max(column)
            distributions[name] = FloatDistribution(low, high, log=name == "lr" and low > 0)
    if not distributions:
        return {}
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize" if maximize else "minimize")
    study.add_trials(
        [
            optuna.trial.create_trial(
                params={name: columns[name][i] for name in distributions},
                distributions=distributions,
                value=float(trial.objective_value or 0.0),
            )
            for i, trial in enumerate(trials)
        ]
    )
    evaluator = (
        FanovaImportanceEvaluator(n_trees=32, max_depth=32, seed=0)
        if method == "fanova"
        else PedAnovaImportanceEvaluator()
    )
    found = optuna.importance.get_param_importances(study, evaluator=evaluator)
    return {name: float(value) for name, value in found.items()}
