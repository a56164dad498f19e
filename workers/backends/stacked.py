"""The packed model: K members as one batched model, torch.func over stacked members.

Every member of a pack has the same workload config (so the same data and batch size) and
sees the same batches in the same order (the pack's ``data_seed``), while keeping its own
initialisation seed, optimizer family, hyperparameters, schedule and clipping. The members'
parameters are stacked along a leading dimension, one forward pass (fused, or vmapped) computes
all K, and the ``PopulationOptimizer`` updates all K members in one step. Evaluation runs in
one stacked pass, summed as evaluating each member's own model would.

A member that diverges or is asked to stop is frozen; once a quarter of the pack is frozen the
pack is compacted (members exported and reloaded into a smaller population), so the work
shrinks with it. A member that resumes from a checkpoint joins the stack at the epoch after
its checkpoint's.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from optisweep.optimizers import at_average
from optisweep.workers.backends import Trained
from optisweep.workers.batches import epoch_batches
from optisweep.workers.checkpoint import Checkpoint
from optisweep.workers.fusion import StackedForward
from optisweep.workers.pbt import exploit_stack
from optisweep.workers.runtime import run_schedule, steps_per_epoch
from optisweep.workers.stacking import (
    Stack,
    evaluate_stacked,
    export_members,
    stack_members,
    sync_models,
    train_stacked_epoch,
)
from optisweep.workers.train import EpochLifecycle, PackRun
from optisweep.workers.workloads import Built


class Stacked:
    """The back-end of a pack's members trained as one stacked model."""

    def __init__(self, run: PackRun, members: list[int]) -> None:
        self.run = run
        spec, config, device = run.spec, run.config, run.device
        self.builds: dict[int, Built] = {}
        for k in members:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(spec.members[k].seed)
                self.builds[k] = run.workload.build(
                    config, seed=spec.members[k].seed, device=device
                )
        self.models: dict[int, nn.Module] = {k: built.model for k, built in self.builds.items()}
        self.shared = self.builds[members[0]]
        """The build whose data every member trains on (the same config, the same data)."""
        self.forward = StackedForward(copy.deepcopy(self.models[members[0]]).to("meta"))
        self.steps = steps_per_epoch(self.shared, config.batch_size)
        for k in members:  # what the schedules leave to the run's length
            schedule = run_schedule(run.configs[k].schedule, epochs=config.epochs, steps=self.steps)
            run.configs[k] = run.configs[k].model_copy(update={"schedule": schedule})
        self.stack: Stack | None = None

    @property
    def training(self) -> list[int]:
        """The stack's members that have not ended."""
        if self.stack is None:
            return []
        return [k for k in self.stack.members if k not in self.run.results]

    @property
    def current(self) -> Stack:
        """The stack training now (the lifecycle trains, evaluates and checkpoints only
        members that joined)."""
        if self.stack is None:
            raise RuntimeError("no member of this pack has joined its stack")
        return self.stack

    def join(self, members: list[int]) -> None:
        """Restack with these members added, from their checkpoints where they resume."""
        resume, configs = self.run.resume, self.run.configs
        exports = {}
        for k in members:
            if k in resume:
                self.models[k].load_state_dict(resume[k].model)
                exports[k] = resume[k].member_export(self.models[k])
        going_on = self.training
        if self.stack is not None:
            exports.update(export_members(self.stack, going_on))
        self.stack = stack_members(self.models, configs, going_on + members, exports)

    def train_epoch(self, epoch: int, members: list[int]) -> dict[int, Trained]:
        """One pass of every stacked member over the epoch's shared batches."""
        run, stack = self.run, self.current
        batches = epoch_batches(
            self.shared.train,
            seed=run.spec.data_seed,
            epoch=epoch,
            batch_size=run.config.batch_size,
            device=run.device,
        )
        finite_rows, losses = train_stacked_epoch(
            stack, self.forward, self.shared, batches, device=run.device
        )
        finite, train_loss = finite_rows.tolist(), losses.tolist()
        stack.optimizer.advance_schedules()
        sync_models(stack, self.models)
        rows = {k: row for row, k in enumerate(stack.members)}
        return {k: Trained(train_loss[rows[k]], finite[rows[k]]) for k in members}

    def evaluate(self, members: list[int]) -> dict[int, dict[str, float]]:
        """Every member's validation metrics from one stacked pass per chunk."""
        stack = self.current
        rows = [(row, k) for row, k in enumerate(stack.members) if k in members]
        averaged = stack.optimizer.averaged
        with at_average(stack.optimizer):
            if averaged:  # the members' own models too, which some metrics read
                sync_models(stack, self.models)
            metrics = evaluate_stacked(stack, self.forward, self.builds, rows)
        if averaged:
            sync_models(stack, self.models)
        return metrics

    def exploit(
        self, epoch: int, metrics: dict[int, dict[str, float]], finite: dict[int, bool]
    ) -> None:
        """PBT: copy rows within families, restack with the explored settings."""
        run, pbt = self.run, self.run.spec.pbt
        if pbt is None:
            return
        self.stack = exploit_stack(
            self.current,
            self.models,
            run.configs,
            pbt,
            epoch,
            run.spec.data_seed,
            metrics,
            finite,
            run.exploited,
        )

    def checkpoint(self, k: int, epoch: int, history: dict[int, dict[str, float]]) -> Checkpoint:
        """Member ``k`` after ``epoch``: its model, and its optimizer state exported."""
        stack = self.current
        row = stack.members.index(k)
        export = stack.optimizer.export_member(row)
        model = {n: v.detach().clone() for n, v in self.models[k].state_dict().items()}
        # the parameters as the export has them: what evaluation saw (schedule-free's x)
        model.update(zip(stack.params, export.params, strict=True))
        return Checkpoint(
            epoch=epoch,
            metrics=history[epoch],
            config=self.run.configs[k],
            model=model,
            optimizer_state=export.optimizer_state,
            step=epoch * self.steps,
            history=dict(history),
        )

    def leave(self, members: set[int]) -> None:
        """Freeze the ended members' rows; compact once enough of the stack is frozen."""
        stack = self.current
        for row, k in enumerate(stack.members):
            if k in members:
                stack.optimizer.freeze(row)
        kept = self.training
        if not kept:
            self.stack = None
            return
        frozen = len(stack.members) - len(kept)
        if frozen >= max(1, self.run.compact_fraction * len(stack.members)):
            self.stack = stack_members(
                self.models, self.run.configs, kept, export_members(stack, kept)
            )


def train_part(run: PackRun, lifecycle: EpochLifecycle) -> None:
    """Train the part's members as one stack, through the epoch lifecycle."""
    lifecycle.drive(Stacked(run, lifecycle.members))
