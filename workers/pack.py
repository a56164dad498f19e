"""Train a pack of K trials as one batched model: torch.func over stacked members.

Every member of a pack has the same workload config (so the same data and batch size) and
sees the same batches in the same order (the pack's ``data_seed``), while keeping its own
initialisation seed, optimizer family, hyperparameters, schedule and clipping. The members'
parameters are stacked along a leading dimension (``torch.func.stack_module_state``), one
vmapped ``functional_call`` computes all K forward passes, and the ``PopulationOptimizer``
updates all K members in one step. Evaluation runs each member's own model (its parameters
copied back), through the very code that trains a trial alone, so a member's per-epoch metrics
are those of the same trial trained alone.

A member that diverges or is asked to stop is frozen; once a quarter of the pack is frozen the
pack is compacted (members exported and reloaded into a smaller population), so the work
shrinks with it.

A pack epoch's time (training and evaluation) is shared: each member that trained in it is
charged an equal part in its ``time_seconds``, so the members' times add up to the pack's.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from optisweep.optimizers import (
    MemberConfig,
)
from optisweep.workers.batches import epoch_batches
from optisweep.workers.checkpoint import Checkpoint, check_resumable
from optisweep.workers.fusion import StackedForward
from optisweep.workers.memory import (
    DEVICE_MEMORY_FRACTION,
    free_device_memory,
    member_memory_bytes,
    split_for_memory,
)
from optisweep.workers.pacing import CheckpointEvery, CheckpointPacer
from optisweep.workers.pbt import Exploit, exploit_stack
from optisweep.workers.specs import PackSpec
from optisweep.workers.stacking import (
    Stack,
    evaluate_stacked,
    export_members,
    stack_members,
    sync_models,
    train_stacked_epoch,
)
from optisweep.workers.train import (
    TrialResult,
    resolve_device,
    run_schedule,
    steps_per_epoch,
)
from optisweep.workers.workloads import TIME_METRIC, Built, parse_workload_config

COMPACT_FRACTION = 0.25
"""Compact the pack once at least this fraction of its members is frozen."""


PackReport = Callable[[int, dict[int, dict[str, float]]], set[int] | None]
"""report(epoch, {member index: metrics}) -> member indices that should stop (or None)."""


@dataclass
class _PackRun:
    """What every part of a pack shares: its spec, workload, callbacks and results so far."""

    spec: PackSpec
    workload: Any
    config: Any
    device: torch.device
    configs: list[MemberConfig]
    report: PackReport | None
    compact_fraction: float
    resume: dict[int, Checkpoint]
    checkpoint: Callable[[int, Checkpoint], None] | None
    pacer: CheckpointPacer
    exploited: Callable[[int, list[Exploit]], None] | None
    results: dict[int, TrialResult]
    histories: dict[int, dict[int, dict[str, float]]]
    """Each member's metrics of every epoch so far (they travel in its checkpoints)."""


def train_pack(
    spec: PackSpec,
    *,
    report: PackReport | None = None,
    stop: set[int] | None = None,
    compact_fraction: float = COMPACT_FRACTION,
    resume: dict[int, Checkpoint] | None = None,
    checkpoint: Callable[[int, Checkpoint], None] | None = None,
    checkpoint_every: CheckpointEvery = 1,
    exploited: Callable[[int, list[Exploit]], None] | None = None,
    free_memory: int | None = None,
) -> list[TrialResult]:
    """Train every member epoch by epoch; each ends completed, diverged or stopped.

    ``stop`` holds members to stop before the first epoch; ``report`` is told each epoch's
    metrics of the members still training and answers which of them should stop.
    ``resume`` maps members to checkpoints to continue from: a member joins the stack at the
    epoch after its checkpoint's. ``checkpoint(member, ckpt)`` is called for every training
    member every ``checkpoint_every`` epochs (or as ``optisweep.workers.pacing`` paces "auto")
    and after the last one, before the report.
    With ``spec.pbt``, members exploit and explore within their family every ``pbt.interval``
    epochs (``optisweep.workers.pbt``), before that epoch's checkpoints;
    ``exploited(epoch, exploits)`` hears of it. A resumed member then takes its settings from
    its checkpoint.
    A pack too large for the device's memory (``free_memory`` bytes, by default what CUDA has
    free, or on the CPU ``spec.memory_mb``) trains in consecutive parts that fit, each as a
    pack; what one member takes is measured here (``member_memory_bytes``, cached per process).
    """
    workload, config = parse_workload_config(spec.workload)
    if not workload.packable:
        raise ValueError(f"workload {workload.name!r} cannot be packed")
    device = resolve_device(spec.device)
    run = _PackRun(
        spec=spec,
        workload=workload,
        config=config,
        device=device,
        configs=[member.member_config() for member in spec.members],
        report=report,
        compact_fraction=compact_fraction,
        resume=dict(resume or {}),
        checkpoint=checkpoint,
        pacer=CheckpointPacer(checkpoint_every, last_epoch=config.epochs),
        exploited=exploited,
        results={},
        histories={k: dict(saved.history) for k, saved in (resume or {}).items()},
    )
    for k in stop or set():
        start, metrics = _resume_point(run, k)
        run.results[k] = TrialResult("stopped", start, metrics, str(device))
    for part in _parts(spec, device, free_memory):
        _train_part(run, [k for k in part if k not in run.results])
    return [run.results[k] for k in range(len(spec.members))]


def _parts(spec: PackSpec, device: torch.device, free_memory: int | None) -> list[list[int]]:
    """The pack's members in consecutive parts that each fit the device's memory."""
    members = len(spec.members)
    free = free_memory if free_memory is not None else free_device_memory(device)
    fraction = DEVICE_MEMORY_FRACTION
    if free is None and spec.memory_mb is not None:  # the CPU: the server's budget, all of it
        free, fraction = int(spec.memory_mb * 2**20), 1.0
    if free is None or members == 1:
        return [list(range(members))]
    member_bytes = spec.member_bytes or member_memory_bytes(
        spec.workload, [m.optimizer for m in spec.members]
    )
    return split_for_memory(members, member_bytes=member_bytes, free_bytes=free, fraction=fraction)


def _resume_point(run: _PackRun, k: int) -> tuple[int, dict[str, float]]:
    saved = run.resume.get(k)
    return (saved.epoch, dict(saved.metrics)) if saved is not None else (0, {})


def _train_part(run: _PackRun, part: list[int]) -> None:
    """Train these members of the pack as one stack until each has a result in ``run``."""
    spec, config, device, configs = run.spec, run.config, run.device, run.configs
    pbt = spec.pbt
    if not part:
        return
    builds: dict[int, Built] = {}
    for k in part:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(spec.members[k].seed)
            builds[k] = run.workload.build(config, seed=spec.members[k].seed, device=device)
    models = {k: built.model for k, built in builds.items()}
    forward = StackedForward(copy.deepcopy(models[part[0]]).to("meta"))
    steps = steps_per_epoch(builds[part[0]], config.batch_size)
    for k in part:  # what the schedules leave to the run's length
        schedule = run_schedule(configs[k].schedule, epochs=config.epochs, steps=steps)
        configs[k] = configs[k].model_copy(update={"schedule": schedule})
    start: dict[int, int] = {}
    last: dict[int, dict[str, float]] = {}
    waiting: set[int] = set()
    for k in part:
        start[k], last[k] = _resume_point(run, k)
        if k in run.resume:
            if pbt is not None:  # PBT changes settings as it goes: the checkpoint has the latest
                configs[k] = run.resume[k].config
            check_resumable(run.resume[k], configs[k])
            models[k].load_state_dict(run.resume[k].model)
        if start[k] >= config.epochs:
            run.results[k] = TrialResult("completed", start[k], last[k], str(device))
        else:
            waiting.add(k)
    stack: Stack | None = None
    shared = builds[part[0]]
    first = min((start[k] for k in waiting), default=config.epochs)
    for epoch in range(first + 1, config.epochs + 1):
        joining = sorted(k for k in waiting if start[k] == epoch - 1)
        if joining:
            waiting.difference_update(joining)
            exports = {
                k: run.resume[k].member_export(models[k]) for k in joining if k in run.resume
            }
            members = joining
            if stack is not None:
                going_on = [k for k in stack.members if k not in run.results]
                exports.update(export_members(stack, going_on))
                members = going_on + joining
            stack = stack_members(models, configs, members, exports)
        if stack is None:
            continue
        stack = _pack_epoch(run, stack, epoch, models, builds, forward, shared, last)
    if stack is not None:
        for k in stack.members:
            if k not in run.results:
                run.results[k] = TrialResult("completed", config.epochs, last[k], str(device))


def member_seconds(pack_seconds: float, members: int) -> float:
    """A member's share of a pack epoch that took ``pack_seconds`` to train ``members``."""
    return pack_seconds / members


def _checkpoint(
    run: _PackRun, stack: Stack, row: int, k: int, model: nn.Module, epoch: int, steps: int
) -> Checkpoint:
    """Member ``k`` (row ``row`` of the stack) after ``epoch``, as a checkpoint of its own."""
    return Checkpoint(
        epoch=epoch,
        metrics=run.histories[k][epoch],
        config=run.configs[k],
        model={n: v.detach().clone() for n, v in model.state_dict().items()},
        optimizer_state=stack.optimizer.export_member(row).optimizer_state,
        step=steps,
        history=dict(run.histories[k]),
    )


def _pack_epoch(
    run: _PackRun,
    stack: Stack,
    epoch: int,
    models: dict[int, nn.Module],
    builds: dict[int, Built],
    forward: StackedForward,
    shared: Built,
    last: dict[int, dict[str, float]],
) -> Stack | None:
    """Train, evaluate, exploit (PBT), checkpoint and report one epoch; the stack that goes on."""
    spec, config, device, pbt = run.spec, run.config, run.device, run.spec.pbt
    epoch_start = time.perf_counter()
    batches = epoch_batches(
        shared.train,
        seed=spec.data_seed,
        epoch=epoch,
        batch_size=config.batch_size,
        device=device,
    )
    finite_rows, train_losses = train_stacked_epoch(stack, forward, shared, batches, device=device)
    finite, train_loss = finite_rows.tolist(), train_losses.tolist()
    stack.optimizer.advance_schedules()
    sync_models(stack, models)
    training = [(row, k) for row, k in enumerate(stack.members) if k not in run.results]
    evaluated = evaluate_stacked(stack, forward, builds, training)
    share = member_seconds(time.perf_counter() - epoch_start, len(training))
    epoch_metrics = {
        k: {
            "train_loss": train_loss[row],
            **evaluated[k],
            TIME_METRIC: last[k].get(TIME_METRIC, 0.0) + share,
        }
        for row, k in training
    }
    for _, k in training:
        run.histories.setdefault(k, {})[epoch] = epoch_metrics[k]
    finite_of = {k: finite[row] for row, k in training}
    if pbt is not None and epoch < config.epochs:
        stack = exploit_stack(
            stack,
            models,
            run.configs,
            pbt,
            epoch,
            spec.data_seed,
            epoch_metrics,
            finite_of,
            run.exploited,
        )
        training = [(row, k) for row, k in enumerate(stack.members) if k not in run.results]
    if run.checkpoint is not None and run.pacer.due(epoch):
        steps = epoch * steps_per_epoch(shared, config.batch_size)
        with run.pacer.writing():
            for row, k in training:
                run.checkpoint(k, _checkpoint(run, stack, row, k, models[k], epoch, steps))
    to_stop = (run.report(epoch, epoch_metrics) if run.report is not None else None) or set()
    keep = []
    for row, k in training:
        metrics = last[k] = epoch_metrics[k]
        losses_finite = math.isfinite(metrics["train_loss"]) and math.isfinite(metrics["val_loss"])
        if not (finite_of[k] and losses_finite):
            run.results[k] = TrialResult("diverged", epoch, metrics, str(device))
        elif k in to_stop and epoch < config.epochs:  # after the last epoch: completed
            run.results[k] = TrialResult("stopped", epoch, metrics, str(device))
        else:
            keep.append(row)
    for row, _ in training:
        if row not in keep:
            stack.optimizer.freeze(row)
    if not keep:
        return None
    if len(stack.members) - len(keep) >= max(1, run.compact_fraction * len(stack.members)):
        kept = [stack.members[row] for row in keep]
        return stack_members(models, run.configs, kept, export_members(stack, kept))
    return stack
