"""Searchers suggest trial configurations and hear how they ended; a registry picks one by
name, and wrappers add what applies to any of them (repeats, a concurrency bound, the
families' defaults first)."""

from collections.abc import Callable

from optisweep.service.search.adaptive import AdaptiveSearcher
from optisweep.service.search.base import Searcher, StoredTrial, Suggestion, combine
from optisweep.service.search.grid import GridError, GridSearcher, grid_size
from optisweep.service.search.random import RandomSearcher
from optisweep.service.search.wrappers import (
    ConcurrencyLimiter,
    DefaultsFirst,
    Repeater,
)
from optisweep.service.sweeps.schemas import SweepCreate


def _grid(sweep: SweepCreate, max_trials: int) -> Searcher:
    return GridSearcher(sweep.space, max_trials=max_trials)


def _random(sweep: SweepCreate, max_trials: int) -> Searcher:
    assert sweep.search.num_trials is not None  # SearchSpec requires it for all but grid
    return RandomSearcher(sweep.space, num_trials=sweep.search.num_trials, seed=sweep.search.seed)


def _adaptive(sweep: SweepCreate, max_trials: int) -> Searcher:
    return AdaptiveSearcher(
        sweep.space,
        algorithm=sweep.search.algorithm,
        seed=sweep.search.seed,
        mode=sweep.objective.mode,
        also=[objective.mode for objective in sweep.objective.also],
    )


SEARCHERS: dict[str, Callable[[SweepCreate, int], Searcher]] = {
    "grid": _grid,
    "random": _random,
    "sobol": _adaptive,
    "tpe": _adaptive,
    "cmaes": _adaptive,
    "gp": _adaptive,
    "nsga2": _adaptive,
}
"""search.algorithm -> a factory of its searcher (sweep, the largest sweep accepted)."""


def defaults_configurations(sweep: SweepCreate) -> int:
    """How many configurations the defaults-first stage adds before the searcher's: one per
    family with ``search.defaults_first``, else none."""
    return len(sweep.space.optimizers) if sweep.search.defaults_first else 0


def make_searcher(sweep: SweepCreate, *, max_trials: int) -> Searcher:
    """The searcher a sweep's ``search.algorithm`` names (GridError when it has too many),
    after each family's defaults with ``search.defaults_first``."""
    search = sweep.search
    if search.algorithm != "grid" and (search.num_trials or 0) > max_trials:
        raise GridError(
            f"num_trials is {search.num_trials}, more than the maximum of {max_trials}",
            field="search.num_trials",
        )
    searcher = SEARCHERS[search.algorithm](sweep, max_trials)
    if search.defaults_first:
        return DefaultsFirst(searcher, optimizers=sweep.space.optimizers)
    return searcher


def sweep_searcher(
    sweep: SweepCreate, *, max_trials: int, concurrency: Callable[[], int]
) -> Searcher:
    """The sweep's searcher as the controller drives it: at most ``concurrency()`` trials in
    flight (counted in configurations of ``search.repeats`` trials), each configuration
    repeated over ``search.repeats`` seeds."""
    repeats = sweep.search.repeats
    limited = ConcurrencyLimiter(
        make_searcher(sweep, max_trials=max_trials),
        limit=lambda: max(1, concurrency() // repeats),
    )
    return Repeater(limited, repeats=repeats) if repeats > 1 else limited


__all__ = [
    "SEARCHERS",
    "AdaptiveSearcher",
    "ConcurrencyLimiter",
    "DefaultsFirst",
    "GridError",
    "GridSearcher",
    "RandomSearcher",
    "Repeater",
    "Searcher",
    "StoredTrial",
    "Suggestion",
    "combine",
    "defaults_configurations",
    "grid_size",
    "make_searcher",
    "sweep_searcher",
]
