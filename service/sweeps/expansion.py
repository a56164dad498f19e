"""A checked sweep spec into its trials: the configurations of a grid or random sweep, each
trial's seed and row, and ``lr: auto`` resolved from a range test. Expansion only expands:
what may be wrong with a spec is ``optisweep.service.sweeps.validation``'s to find, which runs
this once when the sweep is submitted (a sweep with ``lr: auto`` expands once its range test
is in)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence, Sized
from dataclasses import replace
from typing import Any

import numpy as np

from optisweep.service.search import (
    EarlierTrial,
    Suggestion,
    defaults_configurations,
    make_searcher,
)
from optisweep.service.sweeps.schemas import FloatRange, SweepCreate
from optisweep.service.sweeps.search_spec import ADAPTIVE
from optisweep.workers.states import TrialState


def deferred(spec: SweepCreate) -> bool:
    """Whether the sweep's trials come as it runs: adaptive search asks as results arrive,
    ``lr: auto`` waits for its range test."""
    return spec.search.algorithm in ADAPTIVE or spec.space.lr == "auto"


def expand(
    spec: SweepCreate, *, max_trials: int, earlier: Sequence[EarlierTrial] = ()
) -> list[Suggestion]:
    """Every trial configuration of a grid or random sweep, in trial-number order, each
    configuration's repeats consecutive (trial number // repeats is its index); none for a
    deferred sweep. ``earlier``: the trials of the sweeps it warm-starts from. GridError or
    HyperparameterError where the space cannot be expanded."""
    return list(expanded(spec, max_trials=max_trials, earlier=earlier))


def expanded(
    spec: SweepCreate, *, max_trials: int, earlier: Sequence[EarlierTrial] = ()
) -> Iterator[Suggestion]:
    """``expand``, one configuration at a time (a sweep of a million trials is counted and
    written in chunks, never held); the same configurations every time, from the seed."""
    if deferred(spec):
        return
    searcher = make_searcher(spec, max_trials=max_trials, earlier=earlier)
    for suggestion in iter(searcher.suggest, None):
        for sized in at_sizes(spec, [suggestion]):
            for _ in range(spec.search.repeats):
                yield sized


def at_sizes(spec: SweepCreate, suggestions: list[Suggestion]) -> list[Suggestion]:
    """Each configuration at every size of a scale study (``scale``), sizes consecutive;
    without one, the configurations as they are."""
    if spec.scale is None:
        return suggestions
    key = spec.scale.setting
    return [
        replace(suggestion, settings={**suggestion.settings, key: size})
        for suggestion in suggestions
        for size in spec.scale.sizes()
    ]


def planned_trials(spec: SweepCreate, suggestions: Sized) -> int:
    """How many trials a sweep runs: its expansion, or for a deferred sweep num_trials (and
    the defaults-first stage) times the repeats."""
    if deferred(spec) and spec.search.num_trials is not None:
        return (spec.search.num_trials + defaults_configurations(spec)) * spec.search.repeats
    return len(suggestions)


def resolve_lr(spec: SweepCreate, bounds: dict[str, dict[str, Any]]) -> SweepCreate:
    """The sweep with ``lr: auto`` replaced by each family's range-test bounds (log scale)."""
    ranges = {
        name: FloatRange(low=b["low"], high=b["high"], log=True) for name, b in bounds.items()
    }
    overrides: dict[str, dict[str, Any]] = {  # learning-rate-free families were not tested
        name: {
            **spec.space.overrides.get(name, {}),
            **({"lr": ranges[name]} if name in ranges else {}),
        }
        for name in spec.space.optimizers
    }
    lr = FloatRange(
        low=min(r.low for r in ranges.values()),
        high=max(r.high for r in ranges.values()),
        log=True,
    )
    space = spec.space.model_copy(update={"lr": lr, "overrides": overrides})
    return spec.model_copy(update={"space": space})


def trial_seed(sweep_seed: int, number: int) -> int:
    """A trial's initialisation seed, in [0, 2**31) so every SQL integer column holds it."""
    state = np.random.SeedSequence([sweep_seed, number]).generate_state(1, dtype=np.uint32)
    return int(state[0] >> 1)


def trial_rows(
    sweep_id: int, spec: SweepCreate, suggestions: Iterable[Suggestion], *, first: int = 0
) -> Iterator[dict[str, Any]]:
    """New PENDING trials (column values) for ``suggestions``, numbered from ``first``, as
    they are drawn."""
    return (
        {
            "sweep_id": sweep_id,
            "number": number,
            "optimizer": suggestion.optimizer,
            "hyperparameters": suggestion.hyperparameters,
            "search_params": suggestion.search_params,
            "settings": suggestion.settings or None,
            "defaults": suggestion.defaults,
            "origin": suggestion.origin,
            "seed": trial_seed(spec.search.seed, number),
            "status": TrialState.PENDING,
        }
        for number, suggestion in enumerate(suggestions, start=first)
    )
