"""Every job a worker trains is a pack (a single trial is a pack of one), and every pack goes
through one epoch lifecycle: resume, train an epoch, evaluate, divergence, checkpoint pacing,
report, stop.

The back-ends (``optisweep.workers.backends``) supply only the training and the evaluation: the
packed model (members stacked, one PopulationOptimizer step), one model with its torch.optim
optimizer, or the user's own loop (a function workload, Lightning through it), which drives its
epochs itself and ends each one here. A stacked pack too large for the device's memory trains
in consecutive parts that fit; members that do not train stacked train one after another.

A pack epoch's time (training and evaluation) is shared: each member that trained in it is
charged an equal part in its ``time_seconds``, so the members' times add up to the pack's.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from optisweep.optimizers import MemberConfig
from optisweep.workers.checkpoint import Checkpoint, check_resumable
from optisweep.workers.memory import (
    DEVICE_MEMORY_FRACTION,
    free_device_memory,
    member_memory_bytes,
    split_for_memory,
)
from optisweep.workers.pacing import CheckpointEvery, CheckpointPacer
from optisweep.workers.runtime import resolve_device
from optisweep.workers.specs import PackSpec, TrialResult
from optisweep.workers.states import TrialState
from optisweep.workers.workloads import TIME_METRIC, parse_workload_config
from optisweep.workers.workloads.functional import FunctionWorkload

if TYPE_CHECKING:
    from optisweep.workers.backends import Backend, EpochBackend
    from optisweep.workers.pbt import Exploit

__all__ = ["PackReport", "PackRun", "diverged", "member_seconds", "train_pack", "train_trial"]

COMPACT_FRACTION = 0.25
"""Compact a stacked pack once at least this fraction of its members is frozen."""
LOSSES = ("train_loss", "val_loss")

PackReport = Callable[[int, dict[int, dict[str, float]]], set[int] | None]
"""report(epoch, {member index: metrics}) -> member indices that should stop (or None)."""


def diverged(metrics: dict[str, float], *, batches_finite: bool = True) -> bool:
    """The one definition of divergence: a batch's loss was not finite, or a reported loss
    (train_loss, val_loss) is not."""
    return not batches_finite or not all(
        math.isfinite(metrics[name]) for name in LOSSES if name in metrics
    )


def member_seconds(pack_seconds: float, members: int) -> float:
    """A member's share of a pack epoch that took ``pack_seconds`` to train ``members``."""
    return pack_seconds / members


@dataclass
class PackRun:
    """What every part of a pack shares: its spec, workload, callbacks and results so far."""

    spec: PackSpec
    workload: Any
    config: Any
    device: torch.device
    configs: list[MemberConfig]
    """Each member's optimizer side (PBT changes them as it goes)."""
    report: PackReport | None
    resume: dict[int, Checkpoint]
    checkpoint: Callable[[int, Checkpoint], None] | None
    pacer: CheckpointPacer
    exploited: Callable[[int, list[Exploit]], None] | None
    compact_fraction: float = COMPACT_FRACTION
    results: dict[int, TrialResult] = field(default_factory=dict)
    histories: dict[int, dict[int, dict[str, float]]] = field(default_factory=dict)
    """Each member's metrics of every epoch so far (they travel in its checkpoints)."""

    def result(self, k: int, status: TrialState, epoch: int, metrics: dict[str, float]) -> None:
        """Member ``k`` ended: how, after which epoch, with which metrics."""
        self.results[k] = TrialResult(status, epoch, dict(metrics), str(self.device))


class EpochLifecycle:
    """One part of a pack through its epochs: where each member starts, and what ends each
    epoch (time, history, divergence, checkpoints, the report, who stops)."""

    def __init__(self, run: PackRun, members: list[int]) -> None:
        self.run = run
        self.epochs: int = run.config.epochs
        self.start: dict[int, int] = {}
        """The epoch each member resumes after (0: from scratch)."""
        self.last: dict[int, dict[str, float]] = {}
        """Each member's latest metrics."""
        for k in members:
            saved = run.resume.get(k)
            self.start[k], self.last[k] = (saved.epoch, dict(saved.metrics)) if saved else (0, {})
            if saved is not None:
                if run.spec.pbt is not None:  # PBT changed its settings: the checkpoint has them
                    run.configs[k] = saved.config
                check_resumable(saved, run.configs[k])
            if self.start[k] >= self.epochs:
                run.result(k, TrialState.COMPLETED, self.start[k], self.last[k])

    @property
    def members(self) -> list[int]:
        """The part's members that have not ended."""
        return [k for k in self.start if k not in self.run.results]

    def joining(self, epoch: int) -> list[int]:
        """The members that train from ``epoch`` on: their checkpoint's epoch is the one before."""
        return [k for k in self.members if self.start[k] == epoch - 1]

    def drive(self, backend: EpochBackend) -> None:
        """Run the part's epochs through a back-end that trains one epoch when asked."""
        first = min((self.start[k] for k in self.members), default=self.epochs)
        for epoch in range(first + 1, self.epochs + 1):
            joining = self.joining(epoch)
            if joining:
                backend.join(joining)
            training = [k for k in backend.training if k not in self.run.results]
            if not training:
                continue
            began = time.perf_counter()
            trained = backend.train_epoch(epoch, training)
            evaluated = backend.evaluate(training)
            metrics = {k: {"train_loss": trained[k].train_loss, **evaluated[k]} for k in training}
            finite = {k: trained[k].finite for k in training}
            seconds = time.perf_counter() - began
            self.end_epoch(epoch, metrics, finite=finite, seconds=seconds, backend=backend)
        self.complete()

    def end_epoch(
        self,
        epoch: int,
        metrics: dict[int, dict[str, float]],
        *,
        finite: dict[int, bool] | None = None,
        seconds: float | None = None,
        backend: Backend,
    ) -> set[int]:
        """Everything after an epoch's training and evaluation: its time (``seconds`` shared
        among the members; None: the metrics carry their own), history, PBT's exploits,
        checkpoints when due, the report and who stops (diverged, or told to before the last
        epoch). The members that ended here."""
        run = self.run
        if seconds is not None:
            share = member_seconds(seconds, len(metrics))
            for k, values in metrics.items():
                values[TIME_METRIC] = self.last[k].get(TIME_METRIC, 0.0) + share
        finite = finite or dict.fromkeys(metrics, True)
        for k, values in metrics.items():
            run.histories.setdefault(k, {})[epoch] = values
        if run.spec.pbt is not None and epoch < self.epochs:
            backend.exploit(epoch, metrics, finite)
        if run.checkpoint is not None and run.pacer.due(epoch):
            with run.pacer.writing():
                for k in metrics:
                    run.checkpoint(k, backend.checkpoint(k, epoch, run.histories[k]))
        to_stop = (run.report(epoch, metrics) if run.report is not None else None) or set()
        ended = set()
        for k, values in metrics.items():
            self.last[k] = values
            if diverged(values, batches_finite=finite[k]):
                run.result(k, TrialState.DIVERGED, epoch, values)
            elif k in to_stop and epoch < self.epochs:  # after the last epoch: completed
                run.result(k, TrialState.STOPPED, epoch, values)
            else:
                continue
            ended.add(k)
        if ended:
            backend.leave(ended)
        return ended

    def complete(self) -> None:
        """After the last epoch: the members still training completed."""
        for k in self.members:
            self.run.result(k, TrialState.COMPLETED, self.epochs, self.last[k])


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
    ``resume`` maps members to checkpoints to continue from: a member joins at the epoch after
    its checkpoint's. ``checkpoint(member, ckpt)`` is called for every training member every
    ``checkpoint_every`` epochs (or as ``optisweep.workers.pacing`` paces "auto") and after the
    last one, before the report. With ``spec.pbt``, members exploit and explore within their
    family every ``pbt.interval`` epochs (``optisweep.workers.pbt``), before that epoch's
    checkpoints; ``exploited(epoch, exploits)`` hears of it. A stacked pack too large for the
    device's memory (``free_memory`` bytes, by default what CUDA has free, or on the CPU
    ``spec.memory_mb``) trains in consecutive parts that fit.
    """
    from optisweep.workers.backends import backend_for

    workload, config = parse_workload_config(spec.workload)
    device = resolve_device(spec.device)
    resume = dict(resume or {})
    run = PackRun(
        spec=spec,
        workload=workload,
        config=config,
        device=device,
        configs=[member.member_config() for member in spec.members],
        report=report,
        resume=resume,
        checkpoint=checkpoint,
        pacer=CheckpointPacer(checkpoint_every, last_epoch=config.epochs),
        exploited=exploited,
        compact_fraction=compact_fraction,
        histories={k: dict(saved.history) for k, saved in resume.items()},
    )
    for k in stop or set():
        saved = resume.get(k)
        run.result(
            k, TrialState.STOPPED, saved.epoch if saved else 0, saved.metrics if saved else {}
        )
    train_part = backend_for(spec, workload)
    for part in _parts(spec, workload, device, free_memory):
        members = [k for k in part if k not in run.results]
        if members:
            train_part(run, EpochLifecycle(run, members))
    return [run.results[k] for k in range(len(spec.members))]


def _parts(
    spec: PackSpec, workload: Any, device: torch.device, free_memory: int | None
) -> list[list[int]]:
    """The pack's members in the parts that train together: one each unless stacked; stacked,
    consecutive parts that each fit the device's memory."""
    members = len(spec.members)
    if not spec.stacked or isinstance(workload, FunctionWorkload):
        return [[k] for k in range(members)]
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


def train_trial(
    spec: PackSpec,
    *,
    report: Callable[[int, dict[str, float]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    resume: Checkpoint | None = None,
    checkpoint: Callable[[Checkpoint], None] | None = None,
    checkpoint_every: CheckpointEvery = 1,
) -> TrialResult:
    """One trial (a pack of one member, e.g. ``PackSpec.single(...)``) through ``train_pack``,
    with one trial's callbacks: to try a workload outside a sweep. ``should_stop`` is asked
    before the first epoch and after each report."""
    if len(spec.members) != 1:
        raise ValueError(f"members: train_trial trains one, got {len(spec.members)}")
    asked = should_stop or (lambda: False)

    def report_one(epoch: int, metrics: dict[int, dict[str, float]]) -> set[int]:
        if report is not None:
            report(epoch, metrics[0])
        return {0} if asked() else set()

    (result,) = train_pack(
        spec,
        report=report_one,
        stop={0} if asked() else None,
        resume={0: resume} if resume is not None else None,
        checkpoint=(lambda _, saved: checkpoint(saved)) if checkpoint is not None else None,
        checkpoint_every=checkpoint_every,
    )
    return result
