"""The training loop of a function workload: the user's function runs it, through a context
that hands it the trial's optimizer, its epochs, and a report that also checkpoints."""

from __future__ import annotations

import copy
import random
from collections.abc import Callable

import numpy as np
import torch

from optisweep.optimizers import create_optimizer, lr_lambda, needs_run_length, resolve_schedule
from optisweep.workers.checkpoint import Checkpoint, check_resumable
from optisweep.workers.pacing import CheckpointEvery, CheckpointPacer
from optisweep.workers.specs import TrialResult, TrialSpec
from optisweep.workers.workloads.base import TIME_METRIC, WorkloadConfig
from optisweep.workers.workloads.functional import FunctionWorkload, TrialContext


def train_function(
    spec: TrialSpec,
    workload: FunctionWorkload,
    config: WorkloadConfig,
    *,
    device: torch.device,
    report: Callable[[int, dict[str, float]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    resume: Checkpoint | None = None,
    checkpoint: Callable[[Checkpoint], None] | None = None,
    checkpoint_every: CheckpointEvery = 1,
) -> TrialResult:
    """Run the user's function for one trial; how it ended (an exception in it fails the
    attempt). Checkpoints hold what ``TrialContext.state`` gives, written at ``report``."""
    history = dict(resume.history) if resume is not None else {}
    schedulers: list[torch.optim.lr_scheduler.LRScheduler] = []
    start = resume.epoch if resume is not None else 0
    per_step = spec.schedule.per == "step"
    if needs_run_length(spec.schedule) and per_step:
        raise ValueError(
            f"schedule: a per-step {spec.schedule.kind} schedule needs the run's length in "
            "steps, which a function workload does not say: give its step_size / t_max"
        )
    schedule = resolve_schedule(spec.schedule, config.epochs)  # per epoch: the epochs
    spec = spec.model_copy(update={"schedule": schedule})
    steps = [resume.step if resume is not None else 0]
    """Optimizer steps taken (by the first optimizer the function asks for)."""

    def make_optimizer(params: list[torch.Tensor]) -> torch.optim.Optimizer:
        optimizer = create_optimizer(spec.optimizer, params, **spec.hyperparameters)
        if spec.clip_norm is not None:
            clip = spec.clip_norm

            def clip_first(*_: object) -> None:  # the trial's clipping, before every step
                torch.nn.utils.clip_grad_norm_(params, clip)

            optimizer.register_step_pre_hook(clip_first)
        for group in optimizer.param_groups:  # a resumed schedule starts from the base lr
            group.setdefault("initial_lr", group["lr"])
        done = steps[0] if per_step else start
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lr_lambda(schedule), last_epoch=done - 1
        )
        schedulers.append(scheduler)
        first = len(schedulers) == 1

        def stepped(*_: object) -> None:  # after every step: count it, a per-step schedule
            if first:
                steps[0] += 1
            if per_step:
                scheduler.step()

        optimizer.register_step_post_hook(stepped)
        return optimizer

    def advance() -> None:  # the end of an epoch: a per-epoch lr schedule takes its step
        if not per_step:
            for scheduler in schedulers:
                scheduler.step()

    context = TrialContext(
        config=config,
        seed=spec.seed,
        device=device,
        make_optimizer=make_optimizer,
        start_epoch=start,
        restore_state=copy.deepcopy(resume.model_state) if resume is not None else None,
        advance=advance,
        trained_seconds=resume.metrics.get(TIME_METRIC, 0.0) if resume is not None else 0.0,
    )

    pacer = CheckpointPacer(checkpoint_every, last_epoch=config.epochs)

    def send(epoch: int, metrics: dict[str, float]) -> bool:
        history[epoch] = metrics
        if checkpoint is not None and pacer.due(epoch):
            with pacer.writing():
                checkpoint(
                    Checkpoint(
                        epoch=epoch,
                        metrics=metrics,
                        config=spec.member_config(),
                        model={},
                        optimizer_state={},
                        step=steps[0],
                        history=dict(history),
                        model_state=context.state(),
                    )
                )
        if report is not None:
            report(epoch, metrics)
        return should_stop is not None and should_stop()

    context.send = send
    if resume is not None:
        check_resumable(resume, spec.member_config())
    if should_stop is not None and should_stop():
        return TrialResult("stopped", start, dict(resume.metrics) if resume else {}, str(device))
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(spec.seed)
        random.seed(spec.seed)
        np.random.seed(spec.seed % 2**32)
        workload.function(context)
    if context.diverged:
        return TrialResult("diverged", context.epochs_run, context.last, str(device))
    if context.stopped and context.epochs_run < config.epochs:
        return TrialResult("stopped", context.epochs_run, context.last, str(device))
    if context.epochs_run < config.epochs:
        raise RuntimeError(
            f"{workload.name}: the function returned after epoch {context.epochs_run} of "
            f"{config.epochs} without being told to stop (it should iterate trial.epochs())"
        )
    return TrialResult("completed", context.epochs_run, context.last, str(device))
