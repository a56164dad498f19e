"""Turn a sweep spec into its trial configurations, checking what the schema alone cannot."""

from __future__ import annotations

from typing import Any

import numpy as np

from optisweep.optimizers import HyperparameterError
from optisweep.service.controller.searchers import (
    GridError,
    Suggestion,
    defaults_configurations,
    make_searcher,
)
from optisweep.service.errors import SpecError
from optisweep.service.sweeps.fits import check_schedule_fits
from optisweep.service.sweeps.schemas import Choice, FloatRange, IntRange, SweepCreate
from optisweep.service.sweeps.search_spec import ADAPTIVE, MULTI_OBJECTIVE, PbtSpec
from optisweep.service.trials.models import TrialState
from optisweep.workers.specs import WorkloadReport
from optisweep.workers.workloads import (
    WorkloadConfigError,
    get_workload,
    parse_workload_config,
    reported_metrics,
)


def check_workload(spec: SweepCreate, report: WorkloadReport | None = None) -> None:
    """The workload exists, its own fields are valid, and it reports the objective metric.

    A built-in or installed workload (``name``) is checked here; a user's (``entrypoint``) by
    what a worker found (``report``), and not at all without one (it was checked on submit).
    """
    if spec.workload.entrypoint is not None:
        if report is None:
            return
        if report.error is not None:
            raise SpecError(report.error, field=f"workload.{report.field or 'entrypoint'}")
        name, metrics = report.name, report.metrics
    else:
        try:
            workload, _ = parse_workload_config(spec.workload.config())
        except WorkloadConfigError as exc:
            raise SpecError(str(exc), field=f"workload.{exc.field or 'name'}") from None
        except ValueError as exc:  # unknown workload name, listing the valid ones
            raise SpecError(str(exc), field="workload.name") from None
        name, metrics = workload.name, reported_metrics(workload)
        _check_batch_sizes(spec)
    several = len(spec.objective.objectives) > 1
    for index, objective in enumerate(spec.objective.objectives):
        if objective.metric not in metrics:
            raise SpecError(
                f"workload {name!r} does not report {objective.metric!r} "
                f"(it reports: {', '.join(metrics)})",
                field=f"objective.{index}.metric" if several else "objective.metric",
            )


def check_algorithm_installed(spec: SweepCreate) -> None:
    """CMA-ES is an extra: a sweep that asks for it where it is not installed is refused."""
    if spec.search.algorithm != "cmaes":
        return
    try:
        import cmaes  # noqa: F401  (Optuna's CmaEsSampler imports it when sampling)
    except ImportError:
        raise SpecError(
            "cmaes needs the cmaes package on the server: pip install 'optisweep[cmaes]'",
            field="search.algorithm",
        ) from None


def check_objectives(spec: SweepCreate) -> None:
    """Several objectives need an algorithm that searches them, and no pbt (it ranks its
    population by one value)."""
    if not spec.objective.also:
        return
    algorithm = spec.search.algorithm
    if algorithm not in MULTI_OBJECTIVE:
        allowed = ", ".join(sorted(MULTI_OBJECTIVE))
        raise SpecError(
            f"{algorithm} searches one objective; with several, use one of {allowed}",
            field="search.algorithm",
        )
    if isinstance(spec.search.scheduler, PbtSpec):
        raise SpecError(
            "pbt ranks its population by one objective: it cannot search several",
            field="search.scheduler",
        )


def _check_batch_sizes(spec: SweepCreate) -> None:
    """Every batch size the space searches is one the (named) workload accepts."""
    searched = spec.space.batch_size
    if searched is None:
        return
    if isinstance(searched, Choice):
        values = list(searched.values)
    elif isinstance(searched, IntRange):
        values = [searched.low, searched.high]
    else:
        values = [searched]
    for value in values:
        try:
            parse_workload_config({**spec.workload.config(), "batch_size": value})
        except WorkloadConfigError as exc:
            raise SpecError(
                f"{value!r} is not a batch size of this workload ({exc})", field="space.batch_size"
            ) from None


def packs(spec: SweepCreate, report: WorkloadReport | None) -> tuple[bool, str | None]:
    """Whether the sweep's workload packs, and why not; (True, None) when not known here
    (a user's workload checked on submit)."""
    if spec.workload.name is not None:
        if get_workload(spec.workload.name).packable:
            return True, None
        return False, f"workload {spec.workload.name!r} cannot be packed"
    if report is None or report.probe is None:
        return True, None
    return report.probe.packable, report.probe.reason


def packing_note(spec: SweepCreate, report: WorkloadReport | None) -> str | None:
    """What the sweep's packs will not do although ``resources.pack`` is on: run at all (its
    trials then run one per task) or run fused (they then run under vmap); None otherwise."""
    if not spec.resources.pack:
        return None
    packable, why = packs(spec, report)
    if not packable:
        return f"trials run one per task: {why}"
    if report is not None and report.probe is not None and report.probe.not_fused:
        return f"packs run under vmap, not fused: {report.probe.not_fused}"
    return None


def check_scheduler(spec: SweepCreate, report: WorkloadReport | None = None) -> None:
    """The early-stopping scheduler's first decision falls within the workload's epochs."""
    packable, why = packs(spec, report)
    if spec.space.lr == "auto" and not packable:
        raise SpecError(
            f"'auto' runs a range test with the families as one pack, and {why}", field="space.lr"
        )
    scheduler = spec.search.scheduler
    if scheduler is None:
        return
    first = {
        "asha": "grace_period",
        "hyperband": "min_epochs",
        "median": "warmup_epochs",
        "pbt": "interval",
    }
    if scheduler.name == "pbt":
        if spec.search.algorithm not in ("random", "sobol"):
            raise SpecError(
                f"pbt needs random or sobol search to start its population, "
                f"not {spec.search.algorithm}",
                field="search.scheduler",
            )
        if not packable:
            raise SpecError(
                f"pbt copies members within a pack, and {why}", field="search.scheduler"
            )
        if not spec.resources.pack:
            raise SpecError(
                "pbt copies members within a pack: it needs pack: true", field="resources.pack"
            )
        if spec.search.defaults_first:
            raise SpecError(
                "pbt changes its trials' hyperparameters as they train: their defaults would "
                "not stay defaults",
                field="search.defaults_first",
            )
    name = first[scheduler.name]
    value = getattr(scheduler, name)
    if value > spec.workload.epochs:
        raise SpecError(
            f"{value} is more than the workload's {spec.workload.epochs} epochs",
            field=f"search.scheduler.{name}",
        )


def expand(
    spec: SweepCreate, *, max_trials: int, report: WorkloadReport | None = None
) -> list[Suggestion]:
    """Every trial configuration of a grid or random sweep, in trial-number order.

    Adaptive algorithms (``ADAPTIVE``) ask for their trials as results arrive: their sweeps
    are checked in full here and expand to nothing; ``sweep_size`` counts their trials.
    """
    check_workload(spec, report)
    check_algorithm_installed(spec)
    check_objectives(spec)
    check_scheduler(spec, report)
    check_schedule_fits(spec, report)
    if spec.space.lr == "auto":
        if spec.search.algorithm == "grid":
            raise SpecError(
                "'auto' needs a sampling algorithm (random, sobol, tpe, cmaes, gp, nsga2); "
                "grid search needs {'values': [...]}",
                field="space.lr",
            )
        return []  # the range test runs first; resolve_lr then gives the searchable space
    try:
        adaptive = spec.search.algorithm in ADAPTIVE
        # An adaptive sweep is checked here without a searcher: it asks as results arrive.
        searcher = None if adaptive else make_searcher(spec, max_trials=max_trials)
        suggestions = [] if searcher is None else list(iter(searcher.suggest, None))
        if adaptive and (spec.search.num_trials or 0) > max_trials:
            raise GridError(
                f"num_trials is {spec.search.num_trials}, more than the maximum of {max_trials}",
                field="search.num_trials",
            )
    except GridError as exc:
        raise SpecError(str(exc), field=exc.field) from None
    except HyperparameterError as exc:
        field = f"space.overrides.{exc.family}" if exc.family else "space"
        raise SpecError(str(exc), field=field) from None
    repeats = spec.search.repeats
    configurations = (
        (spec.search.num_trials or 0) + defaults_configurations(spec)
        if adaptive
        else len(suggestions)
    )
    if configurations * repeats > max_trials:
        raise SpecError(
            f"{configurations} configurations x {repeats} repeats is more than the maximum "
            f"of {max_trials} trials",
            field="search.repeats",
        )
    # The repeats of a configuration are consecutive: trial number // repeats is its index.
    return [suggestion for suggestion in suggestions for _ in range(repeats)]


def sweep_size(spec: SweepCreate, suggestions: list[Suggestion]) -> int:
    """How many trials a sweep runs: its expansion, or for adaptive algorithms num_trials
    (and the defaults-first stage) times the repeats."""
    deferred = spec.search.algorithm in ADAPTIVE or spec.space.lr == "auto"
    if deferred and spec.search.num_trials is not None:
        return (spec.search.num_trials + defaults_configurations(spec)) * spec.search.repeats
    return len(suggestions)


def resolve_lr(spec: SweepCreate, bounds: dict[str, dict[str, Any]]) -> SweepCreate:
    """The sweep with ``lr: auto`` replaced by each family's range-test bounds (log scale)."""
    ranges = {
        name: FloatRange(low=b["low"], high=b["high"], log=True) for name, b in bounds.items()
    }
    overrides: dict[str, dict[str, Any]] = {
        name: {**spec.space.overrides.get(name, {}), "lr": ranges[name]}
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
    sweep_id: int, spec: SweepCreate, suggestions: list[Suggestion], *, first: int = 0
) -> list[dict[str, Any]]:
    """New PENDING trials (column values) for ``suggestions``, numbered from ``first``."""
    return [
        {
            "sweep_id": sweep_id,
            "number": number,
            "optimizer": suggestion.optimizer,
            "hyperparameters": suggestion.hyperparameters,
            "settings": suggestion.settings or None,
            "defaults": suggestion.defaults,
            "seed": trial_seed(spec.search.seed, number),
            "status": TrialState.PENDING,
        }
        for number, suggestion in enumerate(suggestions, start=first)
    ]
