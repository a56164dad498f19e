"""The training loop for one trial: build its workload and optimizer, train, report each epoch."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from optisweep.optimizers import (
    Schedule,
    create_optimizer,
    lr_lambda,
    resolve_schedule,
)
from optisweep.workers.batches import (
    Data,
    Inputs,
    batch_rows,
    chunks,
    data_size,
    epoch_batches,
    epoch_generator,
    forward,
)
from optisweep.workers.checkpoint import Checkpoint, check_resumable
from optisweep.workers.function_loop import train_function
from optisweep.workers.pacing import CheckpointEvery, CheckpointPacer
from optisweep.workers.specs import TrialResult, TrialSpec, parse_device
from optisweep.workers.workloads import TIME_METRIC, Built, parse_workload_config
from optisweep.workers.workloads.functional import FunctionWorkload

__all__ = [
    "epoch_generator",
    "evaluate",
    "resolve_device",
    "run_schedule",
    "steps_per_epoch",
    "train_trial",
]

EVAL_CHUNK = 4_096
"""Rows per forward pass when evaluating, so large datasets need not fit in one pass."""


def resolve_device(name: str) -> torch.device:
    """The torch device for ``name``: "auto" is cuda when available, else cpu."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = parse_device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device: {name!r} requested but CUDA is not available")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ValueError(f"device: {name!r} requested but only {count} CUDA device(s) exist")
    return device


def _mean_loss(built: Built, data: Data, device: torch.device) -> tuple[float, Tensor, Tensor]:
    """Mean loss over all rows (in float64 across chunks), the outputs and the targets."""
    total, count = 0.0, 0
    outputs, targets = [], []
    for inputs, chunk_targets in chunks(data, size=EVAL_CHUNK, device=device):
        output = forward(built.model, inputs)
        total += built.loss_fn(output, chunk_targets).item() * len(chunk_targets)
        count += len(chunk_targets)
        outputs.append(output)
        targets.append(chunk_targets)
    return total / count, torch.cat(outputs), torch.cat(targets)


@torch.no_grad()
def evaluate(built: Built, device: torch.device) -> dict[str, float]:
    """val_loss over the whole validation set and the workload's validation metrics, and
    train_loss over the whole training set where the workload measures it so ("full")."""
    built.model.eval()
    metrics = {}
    if built.train_loss == "full":
        metrics["train_loss"], _, _ = _mean_loss(built, built.train, device)
    val_loss, val_output, val_targets = _mean_loss(built, built.val, device)
    return {**metrics, "val_loss": val_loss, **built.metrics(val_output, val_targets)}


def _train_epoch(
    built: Built,
    optimizer: torch.optim.Optimizer,
    batches: Iterator[tuple[Inputs, Tensor]],
    *,
    device: torch.device,
    clip_norm: float | None = None,
    after_step: Callable[[], object] | None = None,
) -> tuple[bool, float]:
    """One pass over the shuffled training set: whether every batch loss was finite, and the
    epoch's train_loss (the batches' losses averaged over examples, in float64).
    ``after_step`` runs after every optimizer step (a per-step lr schedule's step)."""
    built.model.train()
    finite = torch.ones((), dtype=torch.bool, device=device)
    total = torch.zeros((), dtype=torch.float64, device=device)
    count = 0
    for inputs, targets in batches:
        optimizer.zero_grad(set_to_none=True)
        loss = built.loss_fn(forward(built.model, inputs), targets)
        loss.backward()
        if clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(built.model.parameters(), clip_norm)
        optimizer.step()
        if after_step is not None:
            after_step()
        finite &= torch.isfinite(loss.detach())
        total += loss.detach().double() * len(targets)
        count += len(targets)
    return bool(finite.item()), float(total) / max(1, count)


def steps_per_epoch(built: Built, batch_size: int | str) -> int:
    """Optimizer steps in one epoch: one per batch, the last one possibly short."""
    size = data_size(built.train)
    return math.ceil(size / batch_rows(batch_size, size))


def schedule_counts(schedule: Schedule, *, epochs: int, steps: int) -> int:
    """How many times ``schedule`` advances in a run of ``epochs`` of ``steps`` steps each."""
    return epochs * steps if schedule.per == "step" else epochs


def run_schedule(schedule: Schedule, *, epochs: int, steps: int) -> Schedule:
    """``schedule`` with what it leaves to the run's length (cosine's t_max, a step
    schedule's step_size) set for a run of ``epochs`` epochs of ``steps`` optimizer steps."""
    return resolve_schedule(schedule, schedule_counts(schedule, epochs=epochs, steps=steps))


def _checkpoint(
    spec: TrialSpec,
    built: Built,
    optimizer: torch.optim.Optimizer,
    history: dict[int, dict[str, float]],
    *,
    epoch: int,
    steps: int,
) -> Checkpoint:
    """The trial after ``epoch``: copies of its model and optimizer state, its metrics."""
    return Checkpoint(
        epoch=epoch,
        metrics=history[epoch],
        config=spec.member_config(),
        model={k: v.detach().clone() for k, v in built.model.state_dict().items()},
        optimizer_state=copy.deepcopy(optimizer.state_dict()),
        step=steps,
        history=dict(history),
    )


def train_trial(
    spec: TrialSpec,
    *,
    report: Callable[[int, dict[str, float]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    resume: Checkpoint | None = None,
    checkpoint: Callable[[Checkpoint], None] | None = None,
    checkpoint_every: CheckpointEvery = 1,
) -> TrialResult:
    """Train one trial epoch by epoch, reporting metrics after each; stop early on divergence.

    Each epoch's metrics hold ``time_seconds``: the seconds its epochs' training and evaluation
    took so far (not building the workload, checkpoints or reports).
    ``resume`` continues from a checkpoint (taken alone or in a pack) after its epoch, and its
    time from the checkpoint's;
    ``checkpoint`` is handed one every ``checkpoint_every`` epochs (or as
    ``optisweep.workers.pacing`` paces "auto") and after the last epoch,
    before that epoch is reported.
    """
    workload, config = parse_workload_config(spec.workload)
    device = resolve_device(spec.device)
    if isinstance(workload, FunctionWorkload):
        return train_function(
            spec,
            workload,
            config,
            device=device,
            report=report,
            should_stop=should_stop,
            resume=resume,
            checkpoint=checkpoint,
            checkpoint_every=checkpoint_every,
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        built = workload.build(config, seed=spec.seed, device=device)
    optimizer = create_optimizer(spec.optimizer, built.model.parameters(), **spec.hyperparameters)
    steps = steps_per_epoch(built, config.batch_size)
    schedule = run_schedule(spec.schedule, epochs=config.epochs, steps=steps)
    spec = spec.model_copy(update={"schedule": schedule})
    start = 0
    metrics: dict[str, float] = {}
    history: dict[int, dict[str, float]] = {}
    if resume is not None:
        check_resumable(resume, spec.member_config())
        built.model.load_state_dict(resume.model)
        # torch.optim aliases the tensors it loads: copy, so the checkpoint stays as it was.
        optimizer.load_state_dict(copy.deepcopy(resume.optimizer_state))
        start, metrics, history = resume.epoch, dict(resume.metrics), dict(resume.history)
    # last_epoch=done-1: constructing the scheduler steps it to ``done`` counts.
    per_step = schedule.per == "step"
    done = start * steps if per_step else start
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lr_lambda(schedule, schedule_counts(schedule, epochs=config.epochs, steps=steps)),
        last_epoch=done - 1,
    )
    data_seed = spec.seed if spec.data_seed is None else spec.data_seed

    epochs_run = start
    trained_seconds = metrics.get(TIME_METRIC, 0.0)
    pacer = CheckpointPacer(checkpoint_every, last_epoch=config.epochs)
    for epoch in range(start + 1, config.epochs + 1):
        if should_stop is not None and should_stop():
            return TrialResult("stopped", epochs_run, metrics, str(device))
        epoch_start = time.perf_counter()
        batches = epoch_batches(
            built.train, seed=data_seed, epoch=epoch, batch_size=config.batch_size, device=device
        )
        batches_finite, train_loss = _train_epoch(
            built,
            optimizer,
            batches,
            device=device,
            clip_norm=spec.clip_norm,
            after_step=scheduler.step if per_step else None,
        )
        if not per_step:
            scheduler.step()
        evaluated = {"train_loss": train_loss, **evaluate(built, device)}
        trained_seconds += time.perf_counter() - epoch_start
        metrics = history[epoch] = {**evaluated, TIME_METRIC: trained_seconds}
        epochs_run = epoch
        if checkpoint is not None and pacer.due(epoch):
            taken = epoch * steps
            with pacer.writing():
                checkpoint(_checkpoint(spec, built, optimizer, history, epoch=epoch, steps=taken))
        if report is not None:
            report(epoch, metrics)
        losses_finite = math.isfinite(metrics["train_loss"]) and math.isfinite(metrics["val_loss"])
        if not (batches_finite and losses_finite):
            return TrialResult("diverged", epochs_run, metrics, str(device))
    return TrialResult("completed", epochs_run, metrics, str(device))
