"""The user's own loop (a function workload): it runs its epochs itself, through a
``TrialContext`` that hands it the trial's optimizer and ends each epoch it reports in the
lifecycle (history, divergence, checkpoints, the report, whether to stop)."""

from __future__ import annotations

import copy
import random

import numpy as np
import torch

from optisweep.optimizers import ParamInfo, lr_lambda, needs_run_length, resolve_schedule
from optisweep.workers.checkpoint import Checkpoint
from optisweep.workers.train import EpochLifecycle, PackRun
from optisweep.workers.workloads.base import TIME_METRIC
from optisweep.workers.workloads.functional import TrialContext


class Function:
    """The back-end of one member trained by the user's function: the trial's optimizer with
    its clipping and lr schedule as hooks, and checkpoints of what the context tracks."""

    def __init__(self, run: PackRun, k: int, start: int) -> None:
        self.run, self.k, self.start = run, k, start
        schedule = run.configs[k].schedule
        self.per_step = schedule.per == "step"
        if needs_run_length(schedule) and self.per_step:
            raise ValueError(
                f"schedule: a per-step {schedule.kind} schedule needs the run's length in "
                "steps, which a function workload does not say: give its step_size / t_max"
            )
        self.schedule = resolve_schedule(schedule, run.config.epochs)  # per epoch: the epochs
        run.configs[k] = run.configs[k].model_copy(update={"schedule": self.schedule})
        saved = run.resume.get(k)
        self.steps = saved.step if saved is not None else 0
        """Optimizer steps taken (by the first optimizer the function asks for)."""
        self.schedulers: list[torch.optim.lr_scheduler.LRScheduler] = []
        self.context: TrialContext | None = None

    def make_optimizer(
        self, params: list[torch.Tensor], info: list[ParamInfo] | None
    ) -> torch.optim.Optimizer:
        """The trial's optimizer over ``params`` (described by ``info`` when the function
        passed its model): clipping before each step, the lr schedule (resumed where the
        checkpoint left it) after."""
        config = self.run.configs[self.k]
        optimizer = config.torch_optimizer(params, info)
        if config.clip_norm is not None:
            clip = config.clip_norm

            def clip_first(*_: object) -> None:  # the trial's clipping, before every step
                torch.nn.utils.clip_grad_norm_(params, clip)

            optimizer.register_step_pre_hook(clip_first)
        for group in optimizer.param_groups:  # a resumed schedule starts from the base lr
            group.setdefault("initial_lr", group["lr"])
        done = self.steps if self.per_step else self.start
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lr_lambda(self.schedule), last_epoch=done - 1
        )
        self.schedulers.append(scheduler)
        first = len(self.schedulers) == 1

        def stepped(*_: object) -> None:  # after every step: count it, a per-step schedule
            if first:
                self.steps += 1
            if self.per_step:
                scheduler.step()

        optimizer.register_step_post_hook(stepped)
        return optimizer

    def advance(self) -> None:
        """The end of an epoch: a per-epoch lr schedule takes its step."""
        if not self.per_step:
            for scheduler in self.schedulers:
                scheduler.step()

    def exploit(
        self, epoch: int, metrics: dict[int, dict[str, float]], finite: dict[int, bool]
    ) -> None:
        """PBT needs a stacked population: nothing to do in the user's loop."""

    def checkpoint(self, k: int, epoch: int, history: dict[int, dict[str, float]]) -> Checkpoint:
        """What ``TrialContext.state`` gives (tracked modules, the optimizer), after ``epoch``."""
        assert self.context is not None  # checkpoints come from the context's reports
        return Checkpoint(
            epoch=epoch,
            metrics=history[epoch],
            config=self.run.configs[k],
            model={},
            optimizer_state={},
            step=self.steps,
            history=dict(history),
            model_state=self.context.state(),
        )

    def leave(self, members: set[int]) -> None:
        """The member ended: its context tells the function to return."""


def train_part(run: PackRun, lifecycle: EpochLifecycle) -> None:
    """Run the user's function for each of the part's members (a part here is one member);
    an exception in it fails the attempt."""
    for k in lifecycle.members:
        _run_function(run, lifecycle, k)


def _run_function(run: PackRun, lifecycle: EpochLifecycle, k: int) -> None:
    """One member through the user's function: each report ends an epoch in the lifecycle."""
    backend = Function(run, k, lifecycle.start[k])
    member, device, saved = run.spec.members[k], run.device, run.resume.get(k)

    def send(epoch: int, metrics: dict[str, float]) -> bool:  # whether the function stops
        return k in lifecycle.end_epoch(epoch, {k: metrics}, backend=backend)

    context = TrialContext(
        config=run.config,
        seed=member.seed,
        device=device,
        make_optimizer=backend.make_optimizer,
        start_epoch=lifecycle.start[k],
        restore_state=copy.deepcopy(saved.model_state) if saved is not None else None,
        advance=backend.advance,
        trained_seconds=saved.metrics.get(TIME_METRIC, 0.0) if saved is not None else 0.0,
        send=send,
    )
    backend.context = context
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(member.seed)
        random.seed(member.seed)
        np.random.seed(member.seed % 2**32)
        run.workload.function(context)
    if k in run.results:
        return
    if context.epochs_run < run.config.epochs:
        raise RuntimeError(
            f"{run.workload.name}: the function returned after epoch {context.epochs_run} of "
            f"{run.config.epochs} without being told to stop (it should iterate trial.epochs())"
        )
    lifecycle.complete()
