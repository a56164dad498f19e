"""Inspect a sweep's workload on a worker: does it load, are its fields valid, does one trial
run, does it pack.

The server never imports a user's code: it asks a Ray task running this (under the sweep's
runtime_env) and reads the plain ``WorkloadReport`` it returns. Both questions are answered by
doing it. One member of the workload's model takes one training step alone and evaluates a few
rows: a model that fails so (a shape bug, a type error) cannot train at all, and its sweep is
refused at submission, naming where it broke. Then two members take one stacked training step
and one stacked evaluation, so a model that vmap cannot run (data-dependent control flow,
``.item()``, in-place updates of inputs) is found before its sweep runs, and its trials run
one per task.
"""

from __future__ import annotations

import copy
import dataclasses
import traceback
from pathlib import Path
from typing import Any

import torch

from optisweep.optimizers import MemberConfig, describe_params
from optisweep.workers.backends.alone import train_batches
from optisweep.workers.batches import data_size, epoch_batches, is_dataset
from optisweep.workers.evaluation import evaluate
from optisweep.workers.memory import measured_member_bytes
from optisweep.workers.specs import PackProbe, WorkloadReport
from optisweep.workers.workloads import (
    Built,
    FunctionWorkload,
    WorkloadConfigError,
    numeric_fields,
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
        numeric_fields=numeric_fields(loaded.config_model),
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
    failed = fails_alone(built[0], config.batch_size)
    if failed is not None:  # no trial can run: refused before the sweep is, not failed thrice
        return WorkloadReport(error=f"{loaded.name}: one trial alone fails: {failed}", field=where)
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


PROBE_ROWS = 8
"""How many validation rows the one-trial probe evaluates."""


def fails_alone(built: Built, batch_size: int | str) -> str | None:
    """One member alone (a copy of ``built``'s model, plain SGD): a training step on one
    batch and an evaluation of a few validation rows; how it failed (its last line, and the
    last frame of the code that raised it), or None when it ran."""
    model = copy.deepcopy(built.model)
    alone = dataclasses.replace(built, model=model)
    device = torch.device("cpu")
    try:
        optimizer = MemberConfig(optimizer="sgd", hyperparameters={"lr": 1e-3}).model_optimizer(
            model
        )
        batch = next(
            epoch_batches(built.train, seed=0, epoch=1, batch_size=batch_size, device=device)
        )
        train_batches(alone, optimizer, iter([batch]), device=device)
        rows = min(PROBE_ROWS, data_size(built.val))
        small = dataclasses.replace(alone, val=_first_rows(built.val, rows), train_loss="batches")
        evaluate(small, device)
    except Exception as exc:
        return f"{last_line(exc)} ({frame_of(exc)})"
    return None


def _first_rows(data: Any, rows: int) -> Any:
    """The first ``rows`` examples of a workload's data (tensors or a Dataset)."""
    if is_dataset(data):
        return torch.utils.data.Subset(data, range(rows))
    inputs, targets = data
    return tuple(t[:rows] for t in inputs) if isinstance(inputs, tuple) else inputs[:rows], targets[
        :rows
    ]


def frame_of(exc: BaseException) -> str:
    """Where ``exc`` was raised in the code that raised it: the last frame outside torch and
    optisweep (a user's model), else the last frame; "file:line in function"."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = (Path(torch.__file__).parent, Path(__file__).parents[1])
    outside = [f for f in frames if not any(Path(f.filename).is_relative_to(p) for p in ours)]
    if not (outside or frames):
        return "no frame"
    frame = (outside or frames)[-1]
    return f"{Path(frame.filename).name}:{frame.lineno} in {frame.name}"


def _with(
    report: WorkloadReport, probe: PackProbe, train_size: int | None = None
) -> WorkloadReport:
    return dataclasses.replace(report, probe=probe, train_size=train_size)
