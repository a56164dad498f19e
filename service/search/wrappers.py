"""Behaviour that applies to any searcher, as wrappers around one (after Ray Tune's Repeater
and ConcurrencyLimiter): repeats over seeds, a bound on configurations in flight, and given
configurations first (each family at its published defaults, earlier sweeps' bests)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import replace

from optisweep.optimizers import get_spec
from optisweep.service.search.base import (
    Searcher,
    StoredTrial,
    Suggestion,
    combine,
)
from optisweep.workers.states import TrialState


class ConcurrencyLimiter:
    """Suggests nothing while ``limit()`` configurations are in flight (but always one when
    none is: a sweep never waits on itself)."""

    def __init__(self, searcher: Searcher, *, limit: Callable[[], int]) -> None:
        self.searcher = searcher
        self.limit = limit
        self.adaptive = searcher.adaptive
        self._open: set[int] = set()
        self._next = 0

    def suggest(self) -> Suggestion | None:
        """The wrapped searcher's next configuration, if there is room for it."""
        if self._open and len(self._open) >= self.limit():
            return None
        suggestion = self.searcher.suggest()
        if suggestion is not None:
            self._open.add(self._next)
            self._next += 1
        return suggestion

    def on_result(self, number: int, epoch: int, value: float) -> None:
        """Passed on."""
        self.searcher.on_result(number, epoch, value)

    def on_complete(
        self,
        number: int,
        outcome: TrialState,
        objective: float | None,
        also: tuple[float | None, ...] = (),
    ) -> None:
        """The configuration leaves the flight; passed on."""
        self._open.discard(number)
        self.searcher.on_complete(number, outcome, objective, also)

    def restore(self, stored: list[StoredTrial]) -> None:
        """In flight: the stored configurations without an outcome."""
        self._open = {s.number for s in stored if s.outcome is None}
        self._next = len(stored)
        self.searcher.restore(stored)


class Repeater:
    """Each configuration of the wrapped searcher suggested ``repeats`` times in a row (one
    trial per seed: trial ``n`` is configuration ``n // repeats``); the searcher hears of a
    configuration once all its repeats ended, with their mean objective."""

    def __init__(self, searcher: Searcher, *, repeats: int) -> None:
        self.searcher = searcher
        self.repeats = repeats
        self.adaptive = searcher.adaptive
        self._current: Suggestion | None = None
        self._left = 0
        self._results: dict[int, dict[int, StoredTrial]] = defaultdict(dict)
        """Configuration -> its ended repeats (outcome and objectives), by trial number."""

    def suggest(self) -> Suggestion | None:
        """The current configuration again, or the next one."""
        if self._left == 0:
            self._current = self.searcher.suggest()
            if self._current is None:
                return None
            self._left = self.repeats
        self._left -= 1
        return self._current

    def on_result(self, number: int, epoch: int, value: float) -> None:
        """Passed on for the trial's configuration."""
        self.searcher.on_result(number // self.repeats, epoch, value)

    def on_complete(
        self,
        number: int,
        outcome: TrialState,
        objective: float | None,
        also: tuple[float | None, ...] = (),
    ) -> None:
        """A repeat ended; once all of its configuration's did, the searcher hears of it."""
        index = number // self.repeats
        self._results[index][number] = StoredTrial(number, {}, outcome, objective, also)
        if len(self._results[index]) == self.repeats:
            ended = _configuration(index, list(self._results.pop(index).values()))
            assert ended.outcome is not None
            self.searcher.on_complete(index, ended.outcome, ended.objective, ended.also)

    def restore(self, stored: list[StoredTrial]) -> None:
        """Stored trials grouped into configurations, the ended repeats of open ones kept."""
        groups: dict[int, list[StoredTrial]] = defaultdict(list)
        for trial in sorted(stored, key=lambda t: t.number):
            groups[trial.number // self.repeats].append(trial)
        configurations = []
        for index, trials in sorted(groups.items()):
            configuration = _configuration(index, trials)
            if configuration.outcome is None:  # still open: remember the repeats that ended
                for t in trials:
                    if t.outcome is not None:
                        self._results[index][t.number] = t
            configurations.append(configuration)
        self.searcher.restore(configurations)


def _configuration(index: int, repeats: list[StoredTrial]) -> StoredTrial:
    """A configuration's repeats as one: ``combine``'s outcome and mean objective, and the
    mean of each further objective."""
    outcome, mean = combine([(t.outcome, t.objective) for t in repeats])
    width = max(len(t.also) for t in repeats)
    also = tuple(
        combine([(t.outcome, t.also[k] if k < len(t.also) else None) for t in repeats])[1]
        for k in range(width)
    )
    return StoredTrial(index, repeats[0].search_params, outcome, mean, also)


class SuggestedFirst:
    """Configurations ``0..len(first) - 1`` are given ones (the families' published defaults,
    earlier sweeps' best configurations); the wrapped searcher's follow, numbered after them,
    and it hears only of its own (the given ones may lie outside its space)."""

    def __init__(self, searcher: Searcher, *, first: Sequence[Suggestion]) -> None:
        self.searcher = searcher
        self.adaptive = searcher.adaptive
        self._first = list(first)
        self._next = 0

    def suggest(self) -> Suggestion | None:
        """The next given configuration, then the wrapped searcher's."""
        if self._next < len(self._first):
            self._next += 1
            return self._first[self._next - 1]
        return self.searcher.suggest()

    def on_result(self, number: int, epoch: int, value: float) -> None:
        """Passed on, renumbered, for the searcher's configurations."""
        if number >= len(self._first):
            self.searcher.on_result(number - len(self._first), epoch, value)

    def on_complete(
        self,
        number: int,
        outcome: TrialState,
        objective: float | None,
        also: tuple[float | None, ...] = (),
    ) -> None:
        """Passed on, renumbered, for the searcher's configurations."""
        if number >= len(self._first):
            self.searcher.on_complete(number - len(self._first), outcome, objective, also)

    def restore(self, stored: list[StoredTrial]) -> None:
        """The given configurations already suggested are not suggested again; the rest,
        renumbered, go to the searcher."""
        count = len(self._first)
        self._next = min(count, sum(1 for s in stored if s.number < count))
        self.searcher.restore(
            [replace(s, number=s.number - count) for s in stored if s.number >= count]
        )


class DefaultsFirst(SuggestedFirst):
    """Each family at its published defaults (the registry's hyperparameters, no searched
    settings) before the wrapped searcher's configurations (``search.defaults_first``)."""

    def __init__(self, searcher: Searcher, *, optimizers: Sequence[str]) -> None:
        defaults = [
            Suggestion(name, get_spec(name).defaults(), defaults=True) for name in optimizers
        ]
        super().__init__(searcher, first=defaults)
