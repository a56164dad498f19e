"""One member alone: its own model and its torch.optim optimizer (``model_optimizer``), with
its lr schedule as a LambdaLR and its clipping before each step."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from optisweep.optimizers import at_average, lr_lambda, set_mode
from optisweep.workers.backends import Trained
from optisweep.workers.batches import Inputs, epoch_batches, forward
from optisweep.workers.checkpoint import Checkpoint
from optisweep.workers.evaluation import evaluate
from optisweep.workers.runtime import run_schedule, schedule_counts, steps_per_epoch
from optisweep.workers.train import EpochLifecycle, PackRun
from optisweep.workers.workloads import Built


def train_batches(
    built: Built,
    optimizer: torch.optim.Optimizer,
    batches: Iterator[tuple[Inputs, Tensor]],
    *,
    device: torch.device,
    clip_norm: float | None = None,
    after_step: Callable[[], object] | None = None,
) -> Trained:
    """One pass over the shuffled training set: the epoch's train_loss (the batches' losses
    averaged over examples, in float64) and whether every batch loss was finite.
    ``after_step`` runs after every optimizer step (a per-step lr schedule's step)."""
    model, loss_fn = built.model, built.loss_fn
    model.train()
    finite = torch.ones((), dtype=torch.bool, device=device)
    total = torch.zeros((), dtype=torch.float64, device=device)
    count = 0
    for inputs, targets in batches:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(forward(model, inputs), targets)
        loss.backward()
        if clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
        optimizer.step()
        if after_step is not None:
            after_step()
        finite &= torch.isfinite(loss.detach())
        total += loss.detach().double() * len(targets)
        count += len(targets)
    return Trained(float(total) / max(1, count), bool(finite.item()))


class Alone:
    """The back-end of one member trained by itself."""

    def __init__(self, run: PackRun, k: int, start: int) -> None:
        self.run, self.k = run, k
        member, config, device = run.spec.members[k], run.config, run.device
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(member.seed)
            self.built = run.workload.build(config, seed=member.seed, device=device)
        self.optimizer = member.model_optimizer(self.built.model)
        self.steps = steps_per_epoch(self.built, config.batch_size)
        schedule = run_schedule(member.schedule, epochs=config.epochs, steps=self.steps)
        run.configs[k] = run.configs[k].model_copy(update={"schedule": schedule})
        saved = run.resume.get(k)
        if saved is not None:
            self.built.model.load_state_dict(saved.model)
            # torch.optim aliases the tensors it loads: copy, so the checkpoint stays as it was.
            self.optimizer.load_state_dict(copy.deepcopy(saved.optimizer_state))
            set_mode(self.optimizer, train=True)  # a schedule-free checkpoint holds x: train at y
        self.per_step = schedule.per == "step"
        counts = schedule_counts(schedule, epochs=config.epochs, steps=self.steps)
        done = start * self.steps if self.per_step else start
        # last_epoch=done-1: constructing the scheduler steps it to ``done`` counts.
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lr_lambda(schedule, counts), last_epoch=done - 1
        )
        self.training: list[int] = []

    def join(self, members: list[int]) -> None:
        """The member starts training (its state was loaded when built)."""
        self.training = list(members)

    def train_epoch(self, epoch: int, members: list[int]) -> dict[int, Trained]:
        """One pass over the epoch's batches, the schedule stepped as it says."""
        run = self.run
        batches = epoch_batches(
            self.built.train,
            seed=run.spec.data_seed,
            epoch=epoch,
            batch_size=run.config.batch_size,
            device=run.device,
        )
        trained = train_batches(
            self.built,
            self.optimizer,
            batches,
            device=run.device,
            clip_norm=run.configs[self.k].clip_norm,
            after_step=self.scheduler.step if self.per_step else None,
        )
        if not self.per_step:
            self.scheduler.step()
        return {self.k: trained}

    def evaluate(self, members: list[int]) -> dict[int, dict[str, float]]:
        """The member's validation metrics."""
        with at_average(self.optimizer):
            return {self.k: evaluate(self.built, self.run.device)}

    def exploit(
        self, epoch: int, metrics: dict[int, dict[str, float]], finite: dict[int, bool]
    ) -> None:
        """PBT needs a population: nothing to do alone."""

    def checkpoint(self, k: int, epoch: int, history: dict[int, dict[str, float]]) -> Checkpoint:
        """Copies of the model and optimizer state after ``epoch``, with its metrics (the
        parameters as evaluation saw them: a schedule-free member's x)."""
        with at_average(self.optimizer):
            return Checkpoint(
                epoch=epoch,
                metrics=history[epoch],
                config=self.run.configs[k],
                model={n: v.detach().clone() for n, v in self.built.model.state_dict().items()},
                optimizer_state=copy.deepcopy(self.optimizer.state_dict()),
                step=epoch * self.steps,
                history=dict(history),
            )

    def leave(self, members: set[int]) -> None:
        """The member ended."""
        self.training = [k for k in self.training if k not in members]


def train_part(run: PackRun, lifecycle: EpochLifecycle) -> None:
    """Train each of the part's members alone (a part here is one member)."""
    for k in lifecycle.members:
        lifecycle.drive(Alone(run, k, lifecycle.start[k]))
