"""Searchers suggest trial configurations and hear how they ended; a registry picks one by
name, and wrappers add what applies to any of them (repeats, a concurrency bound, the
families' defaults first)."""

from collections.abc import Callable, Sequence

from optisweep.service.search.adaptive import AdaptiveSearcher
from optisweep.service.search.base import Searcher, StoredTrial, Suggestion, combine
from optisweep.service.search.grid import GridError, GridSearcher, grid_size
from optisweep.service.search.random import RandomSearcher
from optisweep.service.search.warm import EarlierTrial, ranked, sort_fitting
from optisweep.service.search.wrappers import (
    ConcurrencyLimiter,
    DefaultsFirst,
    Repeater,
    SuggestedFirst,
)
from optisweep.service.sweeps.schemas import SweepCreate

Earlier = Sequence[EarlierTrial]
"""Finished trials of the sweeps a sweep warm-starts from (``search.warm_start``)."""

WARM_SHARE = 4
"""A random or adaptive search warm-started from earlier sweeps trains their best fitting
configurations again first, at most one in this many of its trials."""


def _grid(sweep: SweepCreate, max_trials: int, earlier: Earlier, extra: int) -> Searcher:
    if extra:
        raise GridError(
            "a grid sweep trains each of its points once; give more values, or extend a random "
            "or adaptive sweep",
            field="search.algorithm",
        )
    maximize = sweep.objective.mode == "max"
    return GridSearcher(sweep.space, max_trials=max_trials, earlier=earlier, maximize=maximize)


def _random(sweep: SweepCreate, max_trials: int, earlier: Earlier, extra: int) -> Searcher:
    num_trials = sweep.search.num_trials
    assert num_trials is not None  # SearchSpec requires it for all but grid
    return RandomSearcher(sweep.space, num_trials=num_trials + extra, seed=sweep.search.seed)


def _adaptive(sweep: SweepCreate, max_trials: int, earlier: Earlier, extra: int) -> Searcher:
    # An adaptive searcher has no budget of its own: the controller asks it up to the sweep's.
    return AdaptiveSearcher(
        sweep.space,
        algorithm=sweep.search.algorithm,
        seed=sweep.search.seed,
        mode=sweep.objective.mode,
        also=[objective.mode for objective in sweep.objective.also],
        earlier=earlier,
    )


def _retrained(sweep: SweepCreate, earlier: Earlier) -> list[Suggestion]:
    """The earlier sweeps' best configurations that fit the space, trained again first by a
    warm-started random or adaptive search: a quarter of ``num_trials``, at least one; none
    for a grid (it orders its own points) or without a warm start."""
    if sweep.search.algorithm == "grid" or not earlier:
        return []
    count = max(1, (sweep.search.num_trials or 0) // WARM_SHARE)
    fitting = sort_fitting(sweep.space, earlier, shared=False).fitting
    best = ranked([trial for trial, _ in fitting], maximize=sweep.objective.mode == "max")
    return [
        Suggestion(t.optimizer, t.hyperparameters, settings=t.settings, origin=t.origin)
        for t in best[:count]
    ]


SEARCHERS: dict[str, Callable[[SweepCreate, int, Earlier, int], Searcher]] = {
    "grid": _grid,
    "random": _random,
    "sobol": _adaptive,
    "tpe": _adaptive,
    "cmaes": _adaptive,
    "gp": _adaptive,
    "nsga2": _adaptive,
}
"""search.algorithm -> a factory of its searcher (sweep, the largest sweep accepted, the
earlier trials it warm-starts from, how many configurations it draws beyond ``num_trials``:
more once extended, fewer where earlier sweeps' bests take their place)."""


def defaults_configurations(sweep: SweepCreate) -> int:
    """How many configurations the defaults-first stage adds before the searcher's: one per
    family with ``search.defaults_first``, else none."""
    return len(sweep.space.optimizers) if sweep.search.defaults_first else 0


def make_searcher(
    sweep: SweepCreate, *, max_trials: int, earlier: Earlier = (), extra: int = 0
) -> Searcher:
    """The searcher a sweep's ``search.algorithm`` names (GridError when it has too many),
    after each family's defaults with ``search.defaults_first``, having learnt from
    ``earlier`` (``search.warm_start``); ``extra`` configurations beyond ``num_trials``
    (the sweep was extended: a random search draws on from its seed, a grid cannot)."""
    search = sweep.search
    if search.algorithm != "grid" and (search.num_trials or 0) > max_trials:
        raise GridError(
            f"num_trials is {search.num_trials}, more than the maximum of {max_trials}",
            field="search.num_trials",
        )
    retrained = _retrained(sweep, earlier)
    searcher = SEARCHERS[search.algorithm](sweep, max_trials, earlier, extra - len(retrained))
    if retrained:
        searcher = SuggestedFirst(searcher, first=retrained)
    if search.defaults_first:
        return DefaultsFirst(searcher, optimizers=sweep.space.optimizers)
    return searcher


def sweep_searcher(
    sweep: SweepCreate,
    *,
    max_trials: int,
    concurrency: Callable[[], int],
    earlier: Earlier = (),
) -> Searcher:
    """The sweep's searcher as the controller drives it: at most ``concurrency()`` trials in
    flight (counted in configurations of ``search.repeats`` trials), each configuration
    repeated over ``search.repeats`` seeds."""
    repeats = sweep.search.repeats
    limited = ConcurrencyLimiter(
        make_searcher(sweep, max_trials=max_trials, earlier=earlier),
        limit=lambda: max(1, concurrency() // repeats),
    )
    return Repeater(limited, repeats=repeats) if repeats > 1 else limited


__all__ = [
    "SEARCHERS",
    "AdaptiveSearcher",
    "ConcurrencyLimiter",
    "DefaultsFirst",
    "EarlierTrial",
    "GridError",
    "GridSearcher",
    "RandomSearcher",
    "Repeater",
    "Searcher",
    "StoredTrial",
    "SuggestedFirst",
    "Suggestion",
    "combine",
    "defaults_configurations",
    "grid_size",
    "make_searcher",
    "sweep_searcher",
]
