"""Searchers suggest trial configurations and are told results; a registry picks one by name."""

from service.controller.searchers.adaptive import AdaptiveSearcher, StoredTrial
from service.controller.searchers.base import Searcher, Suggestion
from service.controller.searchers.grid import GridError, GridSearcher, grid_size
from service.controller.searchers.random import RandomSearcher
from service.sweeps.schemas import SweepCreate


def make_searcher(sweep: SweepCreate, *, max_trials: int) -> Searcher:
    """The searcher a sweep's ``search.algorithm`` names."""
    search = sweep.search
    if search.algorithm == "grid":
        return GridSearcher(sweep.space, max_trials=max_trials)
    assert search.num_trials is not None  # SearchSpec requires it for all but grid search
    if search.num_trials > max_trials:
        raise GridError(
            f"num_trials is {search.num_trials}, more than the maximum of {max_trials}",
            field="search.num_trials",
        )
    if search.algorithm == "random":
        return RandomSearcher(sweep.space, num_trials=search.num_trials, seed=search.seed)
    return AdaptiveSearcher(
        sweep.space, algorithm=search.algorithm, seed=search.seed, mode=sweep.objective.mode
    )


__all__ = [
    "AdaptiveSearcher",
    "GridError",
    "GridSearcher",
    "RandomSearcher",
    "Searcher",
    "StoredTrial",
    "Suggestion",
    "grid_size",
    "make_searcher",
]
