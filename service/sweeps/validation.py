"""Every check of a sweep spec that its schema alone cannot make, in one place, behind one
entry point: ``check_sweep`` returns the checked sweep (its trials, their number, its packing
note) or raises a SpecError naming the field (a 422 in the API, one line and exit code 2 in the
CLI).

Checks that need no worker run first; a user's workload (``workload.entrypoint``), or a spec
whose batch sizes and warm-ups need the training set's size, is then looked at by a worker
(``inspect``, the controller's, under the sweep's code: the server never imports users' code)
and what only its report can tell is checked next (``fits``: what a sweep's settings need of
its run). Expansion (``expansion.expand``) runs here, once per sweep.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from optisweep.optimizers import HyperparameterError, get_spec
from optisweep.optimizers.members import one_lr_error
from optisweep.optimizers.param_groups import empty_groups
from optisweep.optimizers.rules.muon import MUON, muon_roles
from optisweep.service.code.store import CodeStore
from optisweep.service.errors import SpecError
from optisweep.service.search import (
    EarlierTrial,
    GridError,
    Suggestion,
    defaults_configurations,
)
from optisweep.service.sweeps.expansion import deferred, expanded, planned_trials
from optisweep.service.sweeps.fits import check_batch_fits, check_schedule_fits, needs_train_size
from optisweep.service.sweeps.group_space import rules
from optisweep.service.sweeps.scale import check_scale
from optisweep.service.sweeps.schemas import Choice, IntRange, ResourcesSpec, SweepCreate
from optisweep.service.sweeps.search_spec import MULTI_OBJECTIVE, PbtSpec
from optisweep.workers.specs import WorkloadReport
from optisweep.workers.workloads import (
    WorkloadConfigError,
    get_workload,
    parse_workload_config,
    reported_metrics,
)

Inspect = Callable[[SweepCreate], WorkloadReport]
"""Asks a worker about a sweep's workload, under its code (the controller's inspector)."""
Capacity = Callable[[], tuple[float, float]]
"""The most CPUs and GPUs one node of the cluster offers now."""


@dataclass(frozen=True)
class CheckedSweep:
    """A sweep that passed every check: what it trains, how many trials, what packing says."""

    spec: SweepCreate
    suggestions: Expansion
    """Its trial configurations in trial-number order (none where they come as it runs:
    adaptive search, ``lr: auto``)."""
    num_trials: int
    packing: str | None
    """What its packs will not do although ``resources.pack`` is on, or None."""
    report: WorkloadReport | None
    """What a worker found of its workload, where one was asked."""


def check_sweep(
    spec: SweepCreate,
    *,
    max_trials: int,
    inspect: Inspect | None = None,
    largest_node: Capacity | None = None,
    code_store: CodeStore | None = None,
    local_code: bool = False,
    require_worker: bool = True,
    earlier: Sequence[EarlierTrial] = (),
) -> CheckedSweep:
    """Check a sweep in full; SpecError naming the field of the first problem.

    ``inspect`` asks a worker about the workload where needed (a user's workload needs one
    unless ``require_worker`` is off: the CLI's ``run`` checks what it can before it starts
    Ray); ``largest_node`` says whether the cluster can hold one trial; ``code_store`` holds
    uploaded code (a directory, ``code.path``, only where ``local_code``); ``earlier`` the
    finished trials of the sweeps it warm-starts from (``search.warm_start``).
    """
    _check_code(spec, code_store, local=local_code)
    _check_spec(spec, None)  # what needs no worker first: it is quick
    suggestions = _expanded(spec, max_trials=max_trials, earlier=earlier)
    report = None
    if spec.workload.entrypoint is not None:
        if inspect is None and require_worker:
            raise SpecError(
                "a user's workload is checked on a worker, and this server runs none",
                field="workload.entrypoint",
            )
        report = inspect(spec) if inspect is not None else None
    elif inspect is not None and (needs_train_size(spec) or _selects_parameters(spec)):
        # Searched batch sizes and per-step warm-ups must fit the training set and the run,
        # whose sizes a worker finds out by building the workload (a plain
        # workload.batch_size is capped by the loop instead); parameter-group rules must
        # select parameters of its model.
        report = inspect(spec)
    if report is not None:  # what only a worker could say: the workload, its data
        check_batch_fits(spec, report)
        _check_spec(spec, report)
    if largest_node is not None:
        _check_feasible(spec.resources, largest_node())
    return CheckedSweep(
        spec=spec,
        suggestions=suggestions,
        num_trials=planned_trials(spec, suggestions),
        packing=packing_note(spec, report),
        report=report,
    )


def _check_spec(spec: SweepCreate, report: WorkloadReport | None) -> None:
    """The checks that read the spec (and a worker's report, once there is one)."""
    _check_workload(spec, report)
    _check_algorithm_installed(spec)
    _check_objectives(spec)
    _check_scheduler(spec, report)
    check_schedule_fits(spec, report)
    _check_param_groups(spec, report)
    _check_schedule_free(spec)
    check_scale(spec, report)
    if spec.space.lr == "auto" and not spec.space.lr_tuned():
        raise SpecError(
            "'auto' range-tests the lr of families that take one, and this sweep's "
            f"({', '.join(spec.space.optimizers)}) estimate their own step size at lr 1: "
            "give space.lr a value",
            field="space.lr",
        )
    if spec.space.lr == "auto" and spec.search.algorithm == "grid":
        raise SpecError(
            "'auto' needs a sampling algorithm (random, sobol, tpe, cmaes, gp, nsga2); "
            "grid search needs {'values': [...]}",
            field="space.lr",
        )


def _check_schedule_free(spec: SweepCreate) -> None:
    """A schedule-free family trains without an lr schedule (its average replaces one; its
    own ``warmup_steps`` warms up): its schedule, if any, must be a constant lr."""
    for name in spec.space.optimizers:
        if not get_spec(name).rule.averaged:
            continue
        schedule = spec.space.schedule_for(name)
        if schedule is None or (schedule.kind == "constant" and not schedule.warmup_steps):
            continue
        own = "schedule" in spec.space.overrides.get(name, {})
        raise SpecError(
            f"{name} replaces an lr schedule (its average; warm it up with its own "
            f"warmup_steps): give it a constant one, "
            f"overrides: {{{name}: {{schedule: {{kind: constant, warmup_steps: 0}}}}}}",
            field=f"space.overrides.{name}.schedule" if own else "space.schedule",
        )


def _selects_parameters(spec: SweepCreate) -> bool:
    """Whether the sweep chooses among the model's parameters (groups, Muon's matrices), so
    a worker must describe the model before it runs."""
    return bool(spec.space.param_groups) or "muon" in spec.space.optimizers


def _check_param_groups(spec: SweepCreate, report: WorkloadReport | None) -> None:
    """Each of the space's parameter-group rules selects at least one parameter of the
    workload's model (as a worker described it; a function workload's model is its own), and
    Muon has hidden matrices to orthogonalise; a family with one step size for every
    parameter (Prodigy) gets no group lr multiplier."""
    for name in spec.space.optimizers:
        if not get_spec(name).rule.reduces:
            continue
        for index, group in enumerate(spec.space.param_groups):
            if group.lr_multiplier not in (None, 1.0):
                raise SpecError(
                    one_lr_error(name, group.model_dump(mode="json")["lr_multiplier"]),
                    field=f"space.param_groups.{index}.lr_multiplier",
                )
    if report is None or not report.params:
        return
    if "muon" in spec.space.optimizers and MUON not in muon_roles(report.params, ()):
        matrices = [p.name for p in report.params if p.ndim == 2]
        raise SpecError(
            f"muon: {report.name!r} has no hidden matrix for Muon (its 2-D parameters: "
            f"{', '.join(matrices) or 'none'}; embeddings and the output layer go to AdamW); "
            "choose another family",
            field="space.optimizers",
        )
    for index in empty_groups(rules(spec.space.param_groups, no_decay=False), report.params):
        names = ", ".join(info.name for info in report.params[:12])
        more = f" and {len(report.params) - 12} more" if len(report.params) > 12 else ""
        raise SpecError(
            f"selects no parameter of {report.name!r} (its parameters: {names}{more})",
            field=f"space.param_groups.{index}.select",
        )


@dataclass(frozen=True)
class Expansion:
    """A grid or random sweep's trial configurations, drawn and checked once when it is
    submitted and drawn again, the same from its seed, as its trials are written: a million
    configurations are counted, not held."""

    spec: SweepCreate
    max_trials: int
    earlier: Sequence[EarlierTrial]
    count: int

    def __iter__(self) -> Iterator[Suggestion]:
        return expanded(self.spec, max_trials=self.max_trials, earlier=self.earlier)

    def __len__(self) -> int:
        return self.count


def _expanded(spec: SweepCreate, *, max_trials: int, earlier: Sequence[EarlierTrial]) -> Expansion:
    """The sweep's trials within the trial budget (SpecError naming the field if not)."""
    search = spec.search
    try:
        if deferred(spec) and (search.num_trials or 0) > max_trials:
            raise GridError(
                f"num_trials is {search.num_trials}, more than the maximum of {max_trials}",
                field="search.num_trials",
            )
        count = sum(1 for _ in expanded(spec, max_trials=max_trials, earlier=earlier))
    except GridError as exc:
        raise SpecError(str(exc), field=exc.field) from None
    except HyperparameterError as exc:
        field = f"space.overrides.{exc.family}" if exc.family else "space"
        raise SpecError(str(exc), field=field) from None
    configurations = (
        (search.num_trials or 0) + defaults_configurations(spec)
        if not count
        else count // search.repeats
    )
    if configurations * search.repeats > max_trials:
        raise SpecError(
            f"{configurations} configurations x {search.repeats} repeats is more than the "
            f"maximum of {max_trials} trials",
            field="search.repeats",
        )
    return Expansion(spec, max_trials, earlier, count)


def _check_feasible(resources: ResourcesSpec, largest: tuple[float, float]) -> None:
    """Some node of the cluster can hold one trial of these resources."""
    cpus, gpus = largest
    for field, wanted, offered in (
        ("cpus_per_trial", resources.cpus_per_trial, cpus),
        ("gpus_per_trial", resources.gpus_per_trial, gpus),
    ):
        if wanted > offered:
            raise SpecError(
                f"{wanted:g} requested per trial, but no node of the Ray cluster has more "
                f"than {offered:g}",
                field=f"resources.{field}",
            )


def _check_code(spec: SweepCreate, store: CodeStore | None, *, local: bool = False) -> None:
    """The sweep's code package was uploaded (SpecError naming ``code.package`` if not); a
    directory (``code.path``) only where the caller hands it to Ray itself (``local``)."""
    code = spec.code
    if code is None:
        return
    if code.path is not None and not local:
        raise SpecError(
            "a directory is for the CLI (optisweep submit zips and uploads it): upload the "
            "code with POST /api/v1/code and give its id as code.package",
            field="code.path",
        )
    if code.package is not None and (store is None or store.get(code.package) is None):
        raise SpecError(
            f"no uploaded package {code.package[:16]}...: upload it with POST /api/v1/code",
            field="code.package",
        )


def _check_workload(spec: SweepCreate, report: WorkloadReport | None = None) -> None:
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


def _check_algorithm_installed(spec: SweepCreate) -> None:
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


def _check_objectives(spec: SweepCreate) -> None:
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


def _packs(spec: SweepCreate, report: WorkloadReport | None) -> tuple[bool, str | None]:
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
    packable, why = _packs(spec, report)
    if not packable:
        return f"trials run one per task: {why}"
    if report is not None and report.probe is not None and report.probe.not_fused:
        return f"packs run under vmap, not fused: {report.probe.not_fused}"
    return None


def _check_scheduler(spec: SweepCreate, report: WorkloadReport | None = None) -> None:
    """The early-stopping scheduler's first decision falls within the workload's epochs."""
    packable, why = _packs(spec, report)
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
