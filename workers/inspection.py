"""Inspect a sweep's workload on a worker: does it load, are its fields valid, does it pack.

The server never imports a user's code: it asks a Ray task running this (under the sweep's
runtime_env) and reads the plain ``WorkloadReport`` it returns. "Does it pack" is answered by
doing it: two members of the workload's model take one stacked training step and one stacked
evaluation, so a model that vmap cannot run (data-dependent control flow, ``.item()``, in-place
updates of inputs) is found before its sweep runs, and its trials run one per task.
"""

from __future__ import annotations

import dataclasses
import traceback
from typing import Any

import torch

from optisweep.optimizers import describe_params
from optisweep.workers.batches import data_size
from optisweep.workers.memory import measured_member_bytes
from optisweep.workers.specs import PackProbe, WorkloadReport
from optisweep.workers.workloads import (
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
    report = dataclasses.replace(report, params=tuple(describe_params(built[0].model)))
    if not loaded.packable:
        reason = f"workload {loaded.name!r} says it cannot be packed (packable = False)"
        return _with(report, PackProbe(packable=False, member_bytes=0, reason=reason), size)
    try:  # the step that measures a member's memory is also the proof that the model packs
        cost = measured_member_bytes(built, config.batch_size, optimizers)
    except Exception as exc:  # vmap cannot run this model: train it one trial per task
        reason = f"a stacked step failed ({last_line(exc)})"
        return _with(report, PackProbe(packable=False, member_bytes=0, reason=reason), size)
    return _with(report, PackProbe(True, cost.bytes, not_fused=cost.not_fused), size)


def _with(
    report: WorkloadReport, probe: PackProbe, train_size: int | None = None
) -> WorkloadReport:
    return dataclasses.replace(report, probe=probe, train_size=train_size)
