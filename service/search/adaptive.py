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
    setting_axes,
    to_suggestion,
)
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


def _value(param: Param, drawn: Any) -> Any:
    """What a drawn value means: 1 - drawn for a log_one_minus range."""
    if isinstance(param, FloatRange) and param.log_one_minus:
        return 1 - drawn
    return drawn


class AdaptiveSearcher:
    """Asks an Optuna sampler for configurations and tells it how each trial ended."""

    adaptive = True

    def __init__(
        self, space: Space, *, algorithm: str, seed: int, mode: str, also: Sequence[str] = ()
    ) -> None:
        """``mode`` is the objective's direction; ``also`` those of further objectives."""
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._space = space
        self._shared = algorithm != "tpe"
        self._constrained = algorithm in {"tpe", "gp", "nsga2"}
        """Whether the sampler models constraints (the others warn when given them)."""
        self._study = optuna.create_study(
            directions=["maximize" if m == "max" else "minimize" for m in (mode, *also)],
            sampler=make_sampler(algorithm, seed),
        )
        self._objectives = 1 + len(also)
        self._asked: dict[int, optuna.Trial] = {}
        """Trials asked for and not yet told, by number."""

    def _axes(self, optimizer: str) -> dict[str, tuple[str, Param]]:
        """Stored name -> (name to_suggestion reads, parameter) for one family."""
        from optisweep.optimizers import get_spec

        spec = get_spec(optimizer)
        prefix = "" if self._shared else f"{optimizer}."
        overrides = self._space.family_overrides(optimizer)
        axes: dict[str, tuple[str, Param]] = {}
        if "lr" not in overrides:  # a family's own lr range (lr: auto) replaces the shared one
            axes[f"{prefix}lr"] = ("lr", self._space.searched_lr())
        for name, target in (("beta1", spec.beta1), ("beta2", spec.beta2)):
            param = getattr(self._space, name)
            if param is not None and (self._shared or target is not None):
                axes[f"{prefix}{name}"] = (name, param)
        for name, override in overrides.items():
            if isinstance(override, FloatRange | IntRange | Choice):
                axes[f"{optimizer}.{name}"] = (f"{optimizer}.{name}", override)
        own = "schedule" in self._space.overrides.get(optimizer, {})
        for name, setting in setting_axes(self._space, optimizer).items():
            if isinstance(setting, FloatRange | IntRange | Choice):
                # Shared by every family (a batch size is one), but a family's own schedule
                # is its own dimension.
                stored = f"{optimizer}.{name}" if own and name.startswith("schedule.") else name
                axes[stored] = (name, setting)
        return axes

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

    def _suggestion(self, params: dict[str, Any]) -> Suggestion:
        optimizer = params["optimizer"]
        sampled: dict[str, Any] = {}
        for name, (target, param) in self._axes(optimizer).items():
            sampled[target] = _value(param, params[name])
        for name, override in self._space.family_overrides(optimizer).items():
            if not isinstance(override, FloatRange | IntRange | Choice):
                sampled[f"{optimizer}.{name}"] = override
        for name, setting in setting_axes(self._space, optimizer).items():
            if not isinstance(setting, FloatRange | IntRange | Choice):
                sampled[name] = setting
        return to_suggestion(self._space, optimizer, sampled)

    def suggest(self) -> Suggestion | None:
        """A new configuration, with the raw values drawn for it (stored with the trial)."""
        trial = self._study.ask()
        optimizer = trial.suggest_categorical("optimizer", self._space.optimizers)
        params: dict[str, Any] = {"optimizer": optimizer}
        for name, (_, param) in self._axes(str(optimizer)).items():
            params[name] = _draw(trial, name, param)
        self._asked[trial.number] = trial
        return replace(self._suggestion(params), search_params=params)

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
            self._study.tell(number, values if self._objectives > 1 else values[0])
        else:
            self._study.tell(number, state=state)

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
            if stored.number != len(self._study.trials):
                raise ValueError(f"trial numbers must run 0, 1, 2, ...; got {stored.number}")
            params = stored.search_params
            distributions = self._distributions(params)
            if stored.outcome is None:
                frozen = create_trial(
                    state=TrialState.RUNNING, params=params, distributions=distributions
                )
                self._study.add_trial(frozen)
                trial_id = self._study.get_trials(deepcopy=False)[-1]._trial_id
                self._asked[stored.number] = optuna.Trial(self._study, trial_id)
                continue
            state, values, infeasible = self._result(
                stored.outcome, (stored.objective, *stored.also)
            )
            frozen = create_trial(
                state=state,
                values=values or None,
                params=params,
                distributions=distributions,
                system_attrs=(
                    {f"constraints:{CONSTRAINT}": 1.0 if infeasible else 0.0}
                    if state == TrialState.COMPLETE and self._constrained
                    else {}
                ),
            )
            self._study.add_trial(frozen)

    @property
    def told(self) -> int:
        """How many trials the study knows as finished."""
        return sum(1 for t in self._study.get_trials(deepcopy=False) if t.state.is_finished())
