"""The dispatcher: pending trials to Ray tasks, within the cluster's CPUs and GPUs.

Each tick it asks adaptive sweeps' searchers for trials up to their concurrency, then hands
pending trials to Ray as jobs, each a ``PackSpec`` for the one training entry point
(``run_pack``): stacked packs, or single trials as packs of one.
"""

from __future__ import annotations

import math
import time
import uuid
from collections import defaultdict
from typing import Any

import ray
from sqlalchemy import select

from optisweep.optimizers import (
    ConstantSchedule,
    CosineSchedule,
    ExponentialSchedule,
    Schedule,
    StepSchedule,
)
from optisweep.service.controller.faults import Faults
from optisweep.service.controller.packing import PackingPolicy
from optisweep.service.controller.ray_runtime import cluster_capacity
from optisweep.service.controller.state import ControllerState, InFlight
from optisweep.service.sweeps.expansion import trial_rows
from optisweep.service.sweeps.models import Sweep
from optisweep.service.sweeps.schemas import SweepCreate
from optisweep.service.sweeps.search_spec import PbtSpec
from optisweep.service.trials.models import Trial
from optisweep.service.trials.queue import insert_trials, pending_trials
from optisweep.service.trials.repository import metric_curves
from optisweep.service.trials.tallies import status_counts
from optisweep.workers.specs import CheckpointPlan, MemberSpec, PackSpec, PbtConfig
from optisweep.workers.tasks import run_pack

PENDING_PER_TICK = 256
"""The most pending trials one tick reads (the cluster takes only so many at once)."""


class Dispatcher:
    """Submits pending trials as Ray tasks while the cluster has room."""

    def __init__(
        self,
        state: ControllerState,
        faults: Faults,
        packing: PackingPolicy,
        *,
        capacity_seconds: float,
    ) -> None:
        self.state = state
        self.faults = faults
        self.packing = packing
        self.capacity_seconds = capacity_seconds
        """How long the cluster's capacity is taken as known (nodes may join or leave)."""
        self._capacity = (0.0, 0.0)
        self._last_capacity = -math.inf
        # Ray's type stubs only describe positional signatures; this takes keywords.
        self._run_pack: Any = ray.remote(max_retries=0)(run_pack)  # type: ignore[arg-type]

    def _room(self) -> tuple[float, float, float, float]:
        """(total CPUs, total GPUs, CPUs used, GPUs used) by the tasks in flight."""
        now = time.monotonic()
        if now - self._last_capacity >= self.capacity_seconds:
            self._last_capacity = now
            self._capacity = cluster_capacity()
        used_cpus = sum(f.cpus for f in self.state.in_flight.values())
        used_gpus = sum(f.gpus for f in self.state.in_flight.values())
        return (*self._capacity, used_cpus, used_gpus)

    def dispatch(self) -> None:
        """Ask searchers for trials, then submit pending trials while they fit."""
        active = [s for s in self.state.active if s not in self.faults.failing]
        if not active:
            return
        total_cpus, total_gpus, used_cpus, used_gpus = self._room()
        least_cpus = min(self.state.specs[s].resources.cpus_per_trial for s in active)
        least_gpus = min(self.state.specs[s].resources.gpus_per_trial for s in active)
        if self.state.in_flight and (
            used_cpus + least_cpus > total_cpus + 1e-9 or used_gpus + least_gpus > total_gpus + 1e-9
        ):
            return  # the cluster is full: no need to ask the database for pending trials
        self.state.slots = max(1, math.floor(total_cpus / least_cpus))
        self._top_up()
        with self.state.sessions() as session:
            pending = pending_trials(
                session, sweep_ids=active, in_flight=self.state.by_trial, limit=PENDING_PER_TICK
            )
        by_sweep: dict[int, list[Trial]] = defaultdict(list)
        for trial in pending:
            by_sweep[trial.sweep_id].append(trial)
        in_flight: dict[int, int] = defaultdict(int)
        for flight in self.state.in_flight.values():
            in_flight[flight.sweep_id] += len(flight.trials)
        for sweep_id, trials in by_sweep.items():
            spec = self.state.specs[sweep_id]
            if spec.search.concurrency is not None:
                trials = trials[: max(0, spec.search.concurrency - in_flight[sweep_id])]
            cpus, gpus = spec.resources.cpus_per_trial, spec.resources.gpus_per_trial
            with self.faults.isolated(sweep_id, "submitting its trials"):
                size = self.packing.pack_size(
                    spec,
                    len(trials),
                    total_cpus=total_cpus,
                    total_gpus=total_gpus,
                    sweep_id=sweep_id,
                )
                if size is None:  # a worker is still measuring the workload
                    continue
                for batch in in_packs(trials, size):
                    fits = (
                        used_cpus + cpus <= total_cpus + 1e-9
                        and used_gpus + gpus <= total_gpus + 1e-9
                    )
                    if self.state.in_flight and not fits:
                        return
                    self._submit(spec, sweep_id, batch, cpus=cpus, gpus=gpus, pack=size > 1)
                    used_cpus += cpus
                    used_gpus += gpus

    def _top_up(self) -> None:
        """Ask adaptive sweeps' searchers for trials, as many as they suggest (they hold back
        once the sweep's concurrency is in flight), up to each sweep's trial budget (its
        ``num_trials``: the spec's, or more once extended)."""
        sweeps = [s for s in self.state.active if s in self.state.searchers]
        if not sweeps:
            return
        with self.state.sessions.begin() as session:
            created = {
                sweep_id: sum(by_status.values())
                for sweep_id, by_status in status_counts(session, sweeps).items()
            }
            query = select(Sweep.id, Sweep.num_trials).where(Sweep.id.in_(sweeps))
            budgets: dict[int, int] = dict(session.execute(query).all())
            rows = []
            for sweep_id in sweeps:
                with self.faults.isolated(sweep_id, "asking its searcher"):
                    budget = budgets.get(sweep_id, 0)
                    rows.extend(self._asked_rows(sweep_id, created[sweep_id], budget))
            insert_trials(session, rows)

    def _asked_rows(self, sweep_id: int, created: int, budget: int) -> list[dict[str, Any]]:
        """New trials the sweep's searcher suggests now (rows for ``insert_trials``), numbered
        after the ``created`` it has, up to ``budget`` trials in all."""
        spec = self.state.specs[sweep_id]
        suggestions = []
        for _ in range(created, budget):
            suggestion = self.state.searchers[sweep_id].suggest()
            if suggestion is None:
                break
            suggestions.append(suggestion)
        return list(trial_rows(sweep_id, spec, suggestions, first=created))

    def _submit(
        self,
        spec: SweepCreate,
        sweep_id: int,
        trials: list[Trial],
        *,
        cpus: float,
        gpus: float,
        pack: bool,
    ) -> None:
        """One Ray task for these trials: stacked as a pack, or a single trial alone."""
        attempts = tuple((trial.id, trial.attempt + 1) for trial in trials)
        if spec.search.pruner is not None:
            self._track(spec, sweep_id, trials)
        plans = self._checkpoint_plans(spec, sweep_id, trials)
        pack_id = uuid.uuid4().hex[:16] if pack else None
        job = pack_spec(
            spec,
            trials,
            stacked=pack,
            memory_mb=self.packing.pack_memory_mb,
            member_bytes=self.packing.member_bytes(spec),
        )
        options = self.state.task_options(spec)
        ref = self._run_pack.options(num_cpus=cpus, num_gpus=gpus, **options).remote(
            job, trials=list(attempts), pack_id=pack_id, inbox=self.state.inbox, checkpoints=plans
        )
        self.state.in_flight[ref] = InFlight(sweep_id, attempts, cpus, gpus, pack_id)
        for trial_id, attempt in attempts:
            self.state.by_trial[trial_id] = attempt

    def _track(self, spec: SweepCreate, sweep_id: int, trials: list[Trial]) -> None:
        """Register trials with the sweep's scheduler before they train (retries with their
        curves so far), waiting for the inbox so no report can arrive first."""
        again = [trial.id for trial in trials if trial.attempt > 0 or trial.checkpoint_epoch]
        curves: dict[int, dict[int, float]] = {}
        if again:
            with self.state.sessions() as session:
                curves = metric_curves(session, trial_ids=again, name=spec.objective.metric)
        ray.get(
            self.state.inbox.track.remote(
                sweep_id, [(trial.id, curves.get(trial.id, {})) for trial in trials]
            )
        )

    def _checkpoint_plans(
        self, spec: SweepCreate, sweep_id: int, trials: list[Trial]
    ) -> list[CheckpointPlan] | None:
        """Each trial's checkpoint file and interval, or None without checkpoints."""
        root = self.state.checkpoint_roots.get(sweep_id)
        every = spec.resources.checkpoint_every
        if root is None or every == 0:
            return None
        # named by the trial's number in its sweep, as users name it (a retry of a trial that
        # saved under another name before goes on from that file)
        return [
            CheckpointPlan(
                path=t.checkpoint_path or str(root / f"trial-{t.number}.pt"), every=every
            )
            for t in trials
        ]


def in_packs(trials: list[Trial], size: int) -> list[list[Trial]]:
    """Trials (in number order) as packs of at most ``size`` that share a batch size (a
    pack's members share their batches) and workload sizes (a scale study's: one model
    shape), in the order of each pack's first trial."""
    groups: dict[Any, list[Trial]] = {}
    for trial in trials:
        key = (batch_size_of(trial), tuple(sorted(_workload_sizes(trial).items())))
        groups.setdefault(key, []).append(trial)
    packs = [group[i : i + size] for group in groups.values() for i in range(0, len(group), size)]
    return sorted(packs, key=lambda pack: pack[0].number)


def batch_size_of(trial: Trial) -> Any:
    """The batch size a trial searched, or None (the workload's)."""
    return (trial.settings or {}).get("batch_size")


def _workload_sizes(trial: Trial) -> dict[str, Any]:
    """The workload fields a scale study set for this trial (``workload.<field>``)."""
    settings = trial.settings or {}
    return {k.split(".", 1)[1]: v for k, v in settings.items() if k.startswith("workload.")}


def _workload(spec: SweepCreate, trial: Trial) -> dict[str, Any]:
    """The workload config of this trial: the sweep's, with the trial's batch size and the
    sizes a scale study gave it."""
    config = spec.workload.config()
    if batch_size_of(trial) is not None:
        config["batch_size"] = batch_size_of(trial)
    return {**config, **_workload_sizes(trial)}


def schedule_of(spec: SweepCreate, trial: Trial) -> Schedule:
    """The trial's lr schedule for the optimizer module, counted as the sweep says (epochs or
    steps); what it leaves to the run's length (cosine's t_max, a default step_size) the
    worker sets, knowing the steps of an epoch."""
    drawn = (trial.settings or {}).get("schedule") or {"kind": "constant"}
    space = spec.space.schedule_for(trial.optimizer)
    shared = {
        "warmup": drawn.get("warmup_steps") or 0,
        "per": space.per if space is not None else "epoch",
    }
    match drawn["kind"]:
        case "step":
            return StepSchedule(
                step_size=drawn.get("step_size"), gamma=drawn.get("gamma") or 0.1, **shared
            )
        case "exponential":
            return ExponentialSchedule(gamma=drawn.get("gamma") or 0.9, **shared)
        case "cosine":
            return CosineSchedule(min_factor=drawn.get("min_factor") or 0.0, **shared)
    return ConstantSchedule(**shared)


def pack_spec(
    spec: SweepCreate,
    trials: list[Trial],
    *,
    stacked: bool = True,
    memory_mb: float | None = None,
    member_bytes: int | None = None,
) -> PackSpec:
    """What a worker trains for these trials of this sweep: one job, ``stacked`` as one model
    (in parts that fit ``memory_mb`` on a CPU, at ``member_bytes`` a member where a worker
    measured that) or each trial alone."""
    scheduler = spec.search.scheduler
    pbt = None
    if isinstance(scheduler, PbtSpec):
        pbt = PbtConfig(
            **scheduler.model_dump(exclude={"name"}),
            metric=spec.objective.metric,
            mode=spec.objective.mode,
        )
    return PackSpec(
        workload=_workload(spec, trials[0]),  # the dispatcher packs one batch size together
        members=[
            MemberSpec(
                optimizer=t.optimizer,
                hyperparameters=t.hyperparameters,
                param_groups=spec.space.member_param_groups(t.settings),
                seed=t.seed,
                schedule=schedule_of(spec, t),
                clip_norm=(t.settings or {}).get("clip_norm"),
            )
            for t in trials
        ],
        data_seed=spec.search.seed,
        stacked=stacked,
        pbt=pbt,
        memory_mb=memory_mb,
        member_bytes=member_bytes,
    )
