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
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from optimizers import (
    MemberConfig,
    MemberExport,
    PopulationOptimizer,
)
from workers.checkpoint import Checkpoint
from workers.memory import free_device_memory, member_memory_bytes, split_for_memory
from workers.pbt import Exploit, PbtConfig, plan_exploits
from workers.specs import PackSpec
from workers.train import (
    EVAL_CHUNK,
    TrialResult,
    check_resumable,
    epoch_generator,
    resolve_device,
    steps_per_epoch,
)
from workers.workloads import Built, parse_workload_config

COMPACT_FRACTION = 0.25
"""Compact the pack once at least this fraction of its members is frozen."""


PackReport = Callable[[int, dict[int, dict[str, float]]], set[int] | None]
"""report(epoch, {member index: metrics}) -> member indices that should stop (or None)."""


@dataclass
class _Stack:
    """The active members as one functional model: stacked params and buffers, an optimizer."""

    members: list[int]
    """Member index (in the PackSpec) of each row of the stack."""
    params: dict[str, Tensor]
    buffers: dict[str, Tensor]
    optimizer: PopulationOptimizer


def _family_key(config: MemberConfig) -> tuple[str, Any]:
    return config.optimizer, config.spec.rule.variant(config.validated())


def stack_members(
    models: Mapping[int, nn.Module],
    configs: list[MemberConfig],
    members: list[int],
    exports: dict[int, MemberExport],
) -> _Stack:
    """A stack of these members' models, optimizer state loaded from ``exports`` where given.

    Rows are ordered by family and code path: each group of the PopulationOptimizer is then a
    contiguous slice of the stack and steps through views, not gathers and scatters.
    """
    members = sorted(members, key=lambda k: _family_key(configs[k]))
    params, buffers = stack_module_state([models[k] for k in members])
    optimizer = PopulationOptimizer(list(params.values()), [configs[k] for k in members])
    for row, k in enumerate(members):
        if k in exports:
            optimizer.load_member(row, exports[k])
    return _Stack(members=members, params=params, buffers=buffers, optimizer=optimizer)


def _exports(stack: _Stack, members: Iterable[int]) -> dict[int, MemberExport]:
    rows = {k: row for row, k in enumerate(stack.members)}
    return {k: stack.optimizer.export_member(rows[k]) for k in members}


def _sync(stack: _Stack, models: Mapping[int, nn.Module]) -> None:
    """Copy each active member's stacked parameters and buffers into its own model."""
    with torch.no_grad():
        for row, k in enumerate(stack.members):
            for name, param in models[k].named_parameters():
                param.copy_(stack.params[name][row])
            for name, buffer in models[k].named_buffers():
                buffer.copy_(stack.buffers[name][row])


def _train_epoch(
    stack: _Stack, base: nn.Module, built: Built, *, batch_size: int, order: Tensor
) -> Tensor:
    """One pass of every active member over the shared batches; per row, all losses finite."""
    inputs, targets = built.train

    def member_loss(
        params: dict[str, Tensor], buffers: dict[str, Tensor], x: Tensor, y: Tensor
    ) -> Tensor:
        return built.loss_fn(functional_call(base, (params, buffers), (x,)), y)

    losses_of = vmap(member_loss, in_dims=(0, 0, None, None))
    finite = torch.ones(len(stack.members), dtype=torch.bool, device=targets.device)
    base.train()
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        for param in stack.params.values():
            param.grad = None
        losses = losses_of(stack.params, stack.buffers, inputs[batch], targets[batch])
        losses.sum().backward()  # each member's gradient is that of its own loss
        stack.optimizer.step()
        finite &= torch.isfinite(losses.detach())
    return finite


@torch.no_grad()
def _evaluate(
    stack: _Stack, base: nn.Module, builds: Mapping[int, Built], rows: list[tuple[int, int]]
) -> dict[int, dict[str, float]]:
    """train_loss, val_loss and the workload's metrics of these (row, member)s, all at once.

    The same quantities as ``workers.train.evaluate``, summed in float64 over the same chunks,
    from one vmapped forward pass per chunk instead of one pass per member.
    """
    shared = builds[stack.members[rows[0][0]]]
    base.eval()
    index = torch.tensor([row for row, _ in rows], device=shared.train[1].device)
    params = {name: value[index] for name, value in stack.params.items()}
    buffers = {name: value[index] for name, value in stack.buffers.items()}
    forward = vmap(lambda p, b, x: functional_call(base, (p, b), (x,)), in_dims=(0, 0, None))
    losses = vmap(shared.loss_fn, in_dims=(0, None))

    def mean_losses(inputs: Tensor, targets: Tensor) -> tuple[list[float], Tensor]:
        totals = [0.0] * len(rows)
        outputs = []
        for start in range(0, len(targets), EVAL_CHUNK):
            chunk_targets = targets[start : start + EVAL_CHUNK]
            output = forward(params, buffers, inputs[start : start + EVAL_CHUNK])
            for i, loss in enumerate(losses(output, chunk_targets).tolist()):
                totals[i] += loss * len(chunk_targets)
            outputs.append(output)
        return [total / len(targets) for total in totals], torch.cat(outputs, dim=1)

    train_losses, _ = mean_losses(*shared.train)
    val_losses, val_outputs = mean_losses(*shared.val)
    return {
        k: {
            "train_loss": train_losses[i],
            "val_loss": val_losses[i],
            **builds[k].metrics(val_outputs[i], shared.val[1]),
        }
        for i, (_, k) in enumerate(rows)
    }


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
    checkpoint_every: int
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
    checkpoint_every: int = 1,
    exploited: Callable[[int, list[Exploit]], None] | None = None,
    free_memory: int | None = None,
) -> list[TrialResult]:
    """Train every member epoch by epoch; each ends completed, diverged or stopped.

    ``stop`` holds members to stop before the first epoch; ``report`` is told each epoch's
    metrics of the members still training and answers which of them should stop.
    ``resume`` maps members to checkpoints to continue from: a member joins the stack at the
    epoch after its checkpoint's. ``checkpoint(member, ckpt)`` is called for every training
    member every ``checkpoint_every`` epochs and after the last one, before the report.
    With ``spec.pbt``, members exploit and explore within their family every ``pbt.interval``
    epochs (``workers.pbt``), before that epoch's checkpoints; ``exploited(epoch, exploits)``
    hears of it. A resumed member then takes its settings from its checkpoint.
    A pack too large for the device's memory (``free_memory`` bytes, by default what CUDA has
    free; the CPU is not planned for) trains in consecutive parts that fit, each as a pack.
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
        checkpoint_every=checkpoint_every,
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
    if free is None or members == 1:
        return [list(range(members))]
    member_bytes = member_memory_bytes(spec.workload, [m.optimizer for m in spec.members])
    return split_for_memory(members, member_bytes=member_bytes, free_bytes=free)


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
    base = copy.deepcopy(models[part[0]]).to("meta")
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
    stack: _Stack | None = None
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
                exports.update(_exports(stack, going_on))
                members = going_on + joining
            stack = stack_members(models, configs, members, exports)
        if stack is None:
            continue
        stack = _pack_epoch(run, stack, epoch, models, builds, base, shared, last)
    if stack is not None:
        for k in stack.members:
            if k not in run.results:
                run.results[k] = TrialResult("completed", config.epochs, last[k], str(device))


def _pack_epoch(
    run: _PackRun,
    stack: _Stack,
    epoch: int,
    models: dict[int, nn.Module],
    builds: dict[int, Built],
    base: nn.Module,
    shared: Built,
    last: dict[int, dict[str, float]],
) -> _Stack | None:
    """Train, evaluate, exploit (PBT), checkpoint and report one epoch; the stack that goes on."""
    spec, config, device, pbt = run.spec, run.config, run.device, run.spec.pbt
    order = torch.randperm(len(shared.train[1]), generator=epoch_generator(spec.data_seed, epoch))
    finite = _train_epoch(
        stack, base, shared, batch_size=config.batch_size, order=order.to(device)
    ).tolist()
    stack.optimizer.advance_schedules()
    _sync(stack, models)
    training = [(row, k) for row, k in enumerate(stack.members) if k not in run.results]
    epoch_metrics = _evaluate(stack, base, builds, training)
    for _, k in training:
        run.histories.setdefault(k, {})[epoch] = epoch_metrics[k]
    finite_of = {k: finite[row] for row, k in training}
    if pbt is not None and epoch < config.epochs:
        stack = _exploit(
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
    if run.checkpoint is not None and (epoch % run.checkpoint_every == 0 or epoch == config.epochs):
        steps = steps_per_epoch(shared, config.batch_size)
        for row, k in training:
            export = stack.optimizer.export_member(row)
            run.checkpoint(
                k,
                Checkpoint(
                    epoch=epoch,
                    metrics=epoch_metrics[k],
                    config=run.configs[k],
                    model={n: v.detach().clone() for n, v in models[k].state_dict().items()},
                    optimizer_state=export.optimizer_state,
                    step=epoch * steps,
                    history=dict(run.histories[k]),
                ),
            )
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
        return stack_members(models, run.configs, kept, _exports(stack, kept))
    return stack


def _exploit(
    stack: _Stack,
    models: dict[int, nn.Module],
    configs: list[MemberConfig],
    pbt: PbtConfig,
    epoch: int,
    seed: int,
    metrics: dict[int, dict[str, float]],
    finite: dict[int, bool],
    exploited: Callable[[int, list[Exploit]], None] | None,
) -> _Stack:
    """PBT's exploit and explore step: copy rows within families, restack with new settings."""
    values = {
        k: metrics[k][pbt.metric]
        for k in metrics
        if finite[k] and math.isfinite(metrics[k].get(pbt.metric, math.nan))
    }
    exploits = plan_exploits(pbt, epoch=epoch, seed=seed, values=values, configs=configs)
    if not exploits:
        return stack
    members = list(metrics)
    exports = _exports(stack, members)
    sources = {e.source: copy.deepcopy(models[e.source].state_dict()) for e in exploits}
    for e in exploits:
        models[e.target].load_state_dict(sources[e.source])
        source = exports[e.source]
        exports[e.target] = MemberExport(
            config=e.config,
            params=[p.clone() for p in source.params],
            optimizer_state=copy.deepcopy(source.optimizer_state),
            step=source.step,
            schedule_step=source.schedule_step,
            lr_multiplier=source.lr_multiplier,
        )
        configs[e.target] = e.config
    for k in stack.members:  # frozen rows go as they are
        if k not in exports:
            exports[k] = stack.optimizer.export_member(stack.members.index(k))
    stacked = stack_members(models, configs, list(stack.members), exports)
    for row, k in enumerate(stacked.members):
        if k not in metrics:
            stacked.optimizer.freeze(row)
    if exploited is not None:
        exploited(epoch, exploits)
    return stacked
