"""Sobol, TPE, CMA-ES, GP and NSGA-II search: Optuna's samplers, asked and told through an
in-memory study.

optisweep's database stays the source of truth: every suggestion is stored with the raw values
the sampler drew (``Trial.search_params``), and a restarted controller rebuilds the study from
the stored trials (``restore``) before asking for more.

Spaces are conditional: each family draws only what it has. TPE models each family's own
parameters (``adam.lr``, ``sgd.lr``, ...) with its multivariate, grouped kernel; Sobol, CMA-ES
and GP need one fixed-dimensional space, so they draw shared ``lr``, ``beta1`` and ``beta2``
for every family (a family without betas ignores them) and the family as a categorical.
Diverged trials are told as infeasible (a violated constraint, with the worst objective seen
when theirs is not finite), so the samplers that model constraints (TPE, GP, NSGA-II) learn
each family's safe learning-rate ceiling.

With several objectives (``objective.also``) the study has one direction per objective and is
told every objective's final value; a trial without a finite value for each (and not
diverged) is told as failed, as with one objective.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from optisweep.service.search.base import (
    StoredTrial,
    Suggestion,
    searched_axes,
    suggestion_from,
)
from optisweep.service.search.warm import EarlierTrial, sort_fitting
from optisweep.service.sweeps.schemas import Choice, FloatRange, IntRange, Param, Space
from optisweep.workers.states import TrialState

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution

CONSTRAINT = "diverged"
"""The constraint every told trial carries: 1 when it diverged (infeasible), else 0."""


def make_sampler(algorithm: str, seed: int) -> optuna.samplers.BaseSampler:
    """Optuna's sampler for one of the adaptive algorithms, seeded."""
    import optuna

    with warnings.catch_warnings():
        # QMC and TPE's grouping are marked experimental; both have been stable for years.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if algorithm == "sobol":
            return optuna.samplers.QMCSampler(
                qmc_type="sobol", scramble=True, seed=seed, warn_independent_sampling=False
            )
        if algorithm == "tpe":
            return optuna.samplers.TPESampler(
                seed=seed, multivariate=True, group=True, constant_liar=True
            )
        if algorithm == "cmaes":
            return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
        if algorithm == "gp":
            return optuna.samplers.GPSampler(seed=seed, warn_independent_sampling=False)
        if algorithm == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed)
    raise ValueError(f"algorithm: not an adaptive algorithm: {algorithm!r}")


def _distribution(param: Param) -> BaseDistribution:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    match param:
        case Choice():
            return CategoricalDistribution(param.values)
        case IntRange():
            return IntDistribution(param.low, param.high, log=param.log)
        case FloatRange(log_one_minus=True):
            return FloatDistribution(1 - param.high, 1 - param.low, log=True)
        case FloatRange():
            return FloatDistribution(param.low, param.high, log=param.log)
    raise TypeError(f"not a searched parameter: {param!r}")


def _draw(trial: optuna.Trial, name: str, param: Param) -> Any:
    """Ask the trial for one parameter through Optuna's public suggest API."""
    match param:
        case Choice():
            return trial.suggest_categorical(name, param.values)
        case IntRange():
            return trial.suggest_int(name, param.low, param.high, log=param.log)
        case FloatRange(log_one_minus=True):
            return trial.suggest_float(name, 1 - param.high, 1 - param.low, log=True)
        case FloatRange():
            return trial.suggest_float(name, param.low, param.high, log=param.log)
    raise TypeError(f"not a searched parameter: {param!r}")


def shares_axes(algorithm: str) -> bool:
    """Whether the algorithm draws one lr and one pair of betas for every family (Sobol,
    CMA-ES, GP and NSGA-II need a fixed-dimensional space); TPE draws each family's own."""
    return algorithm != "tpe"


class AdaptiveSearcher:
    """Asks an Optuna sampler for configurations and tells it how each trial ended."""

    adaptive = True

    def __init__(
        self,
        space: Space,
        *,
        algorithm: str,
        seed: int,
        mode: str,
        also: Sequence[str] = (),
        earlier: Sequence[EarlierTrial] = (),
    ) -> None:
        """``mode`` is the objective's direction; ``also`` those of further objectives;
        ``earlier`` finished trials of earlier sweeps, told to the sampler first where they fit
        the space (``search.warm_start``)."""
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._space = space
        self._shared = shares_axes(algorithm)
        self._constrained = algorithm in {"tpe", "gp", "nsga2"}
        """Whether the sampler models constraints (the others warn when given them)."""
        self._study = optuna.create_study(
            directions=["maximize" if m == "max" else "minimize" for m in (mode, *also)],
            sampler=make_sampler(algorithm, seed),
        )
        self._objectives = 1 + len(also)
        self._asked: dict[int, optuna.Trial] = {}
        """Trials asked for and not yet told, by number."""
        self.warm = sort_fitting(space, earlier, shared=self._shared)
        """The earlier trials told to the sampler (``search.warm_start``), and those left out."""
        for trial, params in self.warm.fitting:
            self._study.add_trial(
                self._frozen(params, trial.outcome, (trial.objective, *trial.also))
            )
        self._offset = len(self.warm.fitting)
        """Study trial number - this sweep's configuration number."""

    def _axes(self, optimizer: str) -> dict[str, tuple[str, Param]]:
        """Stored name -> (name to_suggestion reads, parameter) for one family."""
        return searched_axes(self._space, optimizer, shared=self._shared)

    def _distributions(self, params: dict[str, Any]) -> dict[str, BaseDistribution]:
        from optuna.distributions import CategoricalDistribution

        family: dict[str, BaseDistribution] = {
            "optimizer": CategoricalDistribution(self._space.optimizers)
        }
        axes = self._axes(params["optimizer"])
        return {
            name: family["optimizer"] if name == "optimizer" else _distribution(axes[name][1])
            for name in params
        }

    def suggest(self) -> Suggestion | None:
        """A new configuration, with the raw values drawn for it (stored with the trial)."""
        trial = self._study.ask()
        optimizer = trial.suggest_categorical("optimizer", self._space.optimizers)
        params: dict[str, Any] = {"optimizer": optimizer}
        for name, (_, param) in self._axes(str(optimizer)).items():
            params[name] = _draw(trial, name, param)
        self._asked[trial.number - self._offset] = trial
        return replace(
            suggestion_from(self._space, params, shared=self._shared), search_params=params
        )

    def on_result(self, number: int, epoch: int, value: float) -> None:
        """Samplers learn from final results; early stopping has the epochs (schedulers)."""

    def on_complete(
        self,
        number: int,
        outcome: TrialState,
        objective: float | None,
        also: tuple[float | None, ...] = (),
    ) -> None:
        """How configuration ``number`` (in suggestion order) ended, with the final value of
        each objective."""
        from optuna.trial import TrialState as OptunaState

        state, values, infeasible = self._result(outcome, (objective, *also))
        trial = self._asked.pop(number, None)
        if trial is None:
            return  # told already
        if state == OptunaState.COMPLETE:
            if self._constrained:
                trial.set_constraint(CONSTRAINT, 1.0 if infeasible else 0.0)
            self._study.tell(trial, values if self._objectives > 1 else values[0])
        else:
            self._study.tell(trial, state=state)

    def _result(
        self, outcome: TrialState, objectives: tuple[float | None, ...]
    ) -> tuple[Any, list[float], bool]:
        """(Optuna state, one value per objective, infeasible) for an outcome."""
        from optuna.trial import TrialState as OptunaState

        given = [*objectives, *[None] * (self._objectives - len(objectives))]
        finite = [value is not None and math.isfinite(value) for value in given]
        if outcome == TrialState.DIVERGED:
            values = [
                v if ok and v is not None else self._worst(k)
                for k, (v, ok) in enumerate(zip(given, finite, strict=True))
            ]
            return OptunaState.COMPLETE, values, True
        if outcome == TrialState.FAILED or not all(finite):
            return OptunaState.FAIL, [], False
        return OptunaState.COMPLETE, [float(v) for v in given if v is not None], False

    def _worst(self, index: int) -> float:
        """A diverged trial's value of objective ``index`` when it is not finite: the worst
        seen so far."""
        from optuna.study import StudyDirection
        from optuna.trial import TrialState as OptunaState

        values = [
            t.values[index]
            for t in self._study.get_trials(deepcopy=False, states=(OptunaState.COMPLETE,))
            if t.values is not None and math.isfinite(t.values[index])
        ]
        if not values:
            return 0.0
        maximize = self._study.directions[index] == StudyDirection.MAXIMIZE
        return min(values) if maximize else max(values)

    def restore(self, trials: list[StoredTrial]) -> None:
        """Rebuild the study from stored trials, in number order, before asking for more."""
        import optuna
        from optuna.trial import TrialState, create_trial

        for stored in sorted(trials, key=lambda t: t.number):
            if stored.number != len(self._study.trials) - self._offset:
                raise ValueError(f"trial numbers must run 0, 1, 2, ...; got {stored.number}")
            if stored.outcome is None:
                frozen = create_trial(
                    state=TrialState.RUNNING,
                    params=stored.search_params,
                    distributions=self._distributions(stored.search_params),
                )
                self._study.add_trial(frozen)
                trial_id = self._study.get_trials(deepcopy=False)[-1]._trial_id
                self._asked[stored.number] = optuna.Trial(self._study, trial_id)
                continue
            self._study.add_trial(
                self._frozen(stored.search_params, stored.outcome, (stored.objective, *stored.also))
            )

    def _frozen(
        self, params: dict[str, Any], outcome: TrialState, objectives: tuple[float | None, ...]
    ) -> optuna.trial.FrozenTrial:
        """A finished trial as the study stores it: its drawn values, state and objectives
        (a diverged one infeasible)."""
        from optuna.trial import TrialState as OptunaState
        from optuna.trial import create_trial

        state, values, infeasible = self._result(outcome, objectives)
        return create_trial(
            state=state,
            values=values or None,
            params=params,
            distributions=self._distributions(params),
            system_attrs=(
                {f"constraints:{CONSTRAINT}": 1.0 if infeasible else 0.0}
                if state == OptunaState.COMPLETE and self._constrained
                else {}
            ),
        )

    @property
    def told(self) -> int:
        """How many trials the study knows as finished."""
        return sum(1 for t in self._study.get_trials(deepcopy=False) if t.state.is_finished())
