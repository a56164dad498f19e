"""Inspect a sweep's workload on a worker: does it load, are its fields valid, does it pack.

The server never imports a user's code: it asks a Ray task running this (under the sweep's
runtime_env) and reads the plain ``WorkloadReport`` it returns. "Does it pack" is answered by
doing it: two members of the workload's model take one stacked training step and one stacked
evaluation, so a model that vmap cannot run (data-dependent control flow, ``.item()``, in-place
updates of inputs) is found before its sweep runs, and its trials run one per task.
"""

from __future__ import annotations

import copy
import dataclasses
import traceback
from typing import Any

import torch

from optimizers import MemberConfig
from workers.batches import batch_rows, chunks, data_size, epoch_batches
from workers.specs import PackProbe, WorkloadReport
from workers.stacking import evaluate_stacked, stack_members, train_stacked_epoch
from workers.workloads import (
    FunctionWorkload,
    WorkloadConfigError,
    parse_workload_config,
    reported_metrics,
)


def last_line(exc: BaseException) -> str:
    """The last line of ``exc``'s traceback: its type and message."""
    return traceback.format_exception_only(type(exc), exc)[-1].strip()


def inspect_workload(workload: dict[str, Any], optimizers: list[str]) -> WorkloadReport:
    """What a sweep of ``workload`` over these optimizer families needs to know of it."""
    try:
        loaded, config = parse_workload_config(workload)
    except WorkloadConfigError as exc:
        return WorkloadReport(error=str(exc), field=exc.field or "name")
    except ValueError as exc:  # an unknown name: the message lists the valid ones
        return WorkloadReport(error=str(exc), field="name")
    where = "entrypoint" if "entrypoint" in workload else "name"
    function = isinstance(loaded, FunctionWorkload)
    report = WorkloadReport(
        name=loaded.name,
        kind="function" if function else "model",
        metrics=reported_metrics(loaded),
        batch_size=config.batch_size,
    )
    if function:
        reason = "a function workload runs its own training loop"
        return _with(report, PackProbe(packable=False, member_bytes=0, reason=reason))
    try:
        built = [loaded.build(config, seed=seed, device=torch.device("cpu")) for seed in (0, 1)]
    except Exception as exc:  # the user's build step: say where it broke
        return WorkloadReport(
            error=f"{loaded.name}: building the workload failed ({last_line(exc)})", field=where
        )
    size = data_size(built[0].train)
    if not loaded.packable:
        reason = f"workload {loaded.name!r} says it cannot be packed (packable = False)"
        return _with(report, PackProbe(packable=False, member_bytes=0, reason=reason), size)
    try:
        _stacked_step(built, config.batch_size, optimizers)
    except Exception as exc:  # vmap cannot run this model: train it one trial per task
        reason = f"a stacked step failed ({last_line(exc)})"
        return _with(report, PackProbe(packable=False, member_bytes=0, reason=reason), size)
    from workers.memory import member_memory_bytes

    return _with(report, PackProbe(True, member_memory_bytes(workload, optimizers)), size)


def _with(
    report: WorkloadReport, probe: PackProbe, train_size: int | None = None
) -> WorkloadReport:
    return WorkloadReport(
        name=report.name,
        kind=report.kind,
        metrics=report.metrics,
        probe=probe,
        train_size=train_size,
        batch_size=report.batch_size,
    )


def _stacked_step(built: list[Any], batch_size: int | str, optimizers: list[str]) -> None:
    """One training step and one evaluation of two members as a pack (raises if vmap can't)."""
    device = torch.device("cpu")
    models = {k: b.model for k, b in enumerate(built)}
    configs = [MemberConfig(optimizer=optimizers[0], hyperparameters={"lr": 1e-3})] * 2
    stack = stack_members(models, configs, [0, 1], {})
    base = copy.deepcopy(built[0].model).to("meta")
    batch = next(
        epoch_batches(built[0].train, seed=0, epoch=1, batch_size=batch_size, device=device)
    )
    train_stacked_epoch(stack, base, built[0], iter([batch]), device=device)
    few = next(chunks(built[0].val, size=batch_rows(batch_size, 64), device=device))
    small = dataclasses.replace(built[0], train=few, val=few)
    evaluate_stacked(stack, base, {0: small, 1: small}, [(0, 0), (1, 1)])
