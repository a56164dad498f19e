"""Ray entry points: what the controller runs on workers, and how they report back.

Workers hold no database connection. They send every epoch's metrics to the controller's
inbox actor (a Ray actor handle passed in by the controller) and learn from its answer whether
to stop; the controller writes what the inbox collected in batches. This module is what the
server imports of the workers: the training code (and any workload's code) is imported inside
the tasks, on the workers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import ray

from optisweep.workers.specs import (
    CheckpointPlan,
    PackSpec,
    RangeTestSpec,
    TaskResult,
    TrainingError,
    WorkloadReport,
)

if TYPE_CHECKING:
    from optisweep.workers.checkpoint import Checkpoint
    from optisweep.workers.pbt import Exploit


class _RemoteMethod(Protocol):
    def remote(self, *args: Any) -> Any: ...


class InboxHandle(Protocol):
    """What a worker needs of the controller's inbox actor."""

    started: _RemoteMethod
    """``started([(trial_id, attempt, resumed_epoch)], node_id, device, pack_id)
    -> [trial ids to stop]``: a job's attempts began on this node, each continuing after its
    ``resumed_epoch`` (0: from scratch); ``pack_id`` is None unless they train stacked."""
    report: _RemoteMethod
    """``report(epoch, [(trial_id, attempt, metrics, checkpoint)]) -> [trial ids to stop]``:
    store an epoch of each (and the checkpoint path written for it, or None)."""
    exploited: _RemoteMethod
    """``exploited(epoch, [(trial_id, attempt, source trial id, hyperparameters)])``: PBT."""


def _device() -> str:
    """CUDA when Ray gave this task a GPU (it then sets CUDA_VISIBLE_DEVICES), else the CPU."""
    return "cuda" if ray.get_gpu_ids() else "cpu"


def _resume(plan: CheckpointPlan | None, device: str) -> Checkpoint | None:
    """The checkpoint an earlier attempt left at the plan's path, if any."""
    from pathlib import Path

    from optisweep.workers.checkpoint import load_checkpoint
    from optisweep.workers.runtime import resolve_device

    if plan is None or not Path(plan.path).is_file():
        return None
    return load_checkpoint(plan.path, device=resolve_device(device))


@dataclass
class _Channel:
    """A job's line to the controller: its members' reports, PBT exploits and checkpoints,
    with members numbered as in the pack and trials as the controller knows them."""

    trials: list[tuple[int, int]]
    """(trial id, attempt) of each member."""
    inbox: InboxHandle
    checkpoints: list[CheckpointPlan] | None
    written: dict[tuple[int, int], str] = field(default_factory=dict)
    """(member, epoch) -> the checkpoint written for it, told to the controller with it."""

    def report(self, epoch: int, metrics: dict[int, dict[str, float]]) -> set[int]:
        """Report these members' epoch; the members the controller wants stopped."""
        reports = [
            (*self.trials[k], values, self.written.get((k, epoch))) for k, values in metrics.items()
        ]
        stop = set(ray.get(self.inbox.report.remote(epoch, reports)))
        return {k for k in metrics if self.trials[k][0] in stop}

    def exploited(self, epoch: int, exploits: list[Exploit]) -> None:
        """PBT: tell which members took which member's state and settings."""
        items = [
            (
                *self.trials[e.target],
                self.trials[e.source][0],
                e.config.validated().model_dump(mode="json"),
            )
            for e in exploits
        ]
        self.inbox.exploited.remote(epoch, items)  # ordered with this worker's later reports

    def save(self, k: int, ckpt: Checkpoint) -> None:
        """Write member ``k``'s checkpoint where its plan says."""
        from optisweep.workers.checkpoint import save_checkpoint

        assert self.checkpoints is not None
        save_checkpoint(self.checkpoints[k].path, ckpt)
        self.written[(k, ckpt.epoch)] = self.checkpoints[k].path


def run_pack(
    spec: PackSpec,
    *,
    trials: list[tuple[int, int]],
    pack_id: str | None,
    inbox: InboxHandle,
    checkpoints: list[CheckpointPlan] | None = None,
) -> TaskResult:
    """Train a job whose members are these (trial id, attempt)s; one result per member. The
    only training entry point: a single trial is a pack of one.

    Reports every member's metrics each epoch in one call and stops the members the inbox
    names. With ``checkpoints`` (one plan per member) each member continues from the
    checkpoint an earlier attempt left and the job writes every member's checkpoint.
    """
    from optisweep.workers.train import train_pack

    device = _device()
    spec = spec.model_copy(update={"device": device})
    plans = checkpoints or []
    resume = {k: saved for k, plan in enumerate(plans) if (saved := _resume(plan, device))}
    node_id = ray.get_runtime_context().get_node_id()
    started = [
        (trial_id, attempt, resume[k].epoch if k in resume else 0)
        for k, (trial_id, attempt) in enumerate(trials)
    ]
    stop_ids = set(ray.get(inbox.started.remote(started, node_id, device, pack_id)))
    channel = _Channel(trials, inbox, checkpoints)
    # The controller may lack epochs up to a checkpoint's (a server killed with reports still
    # in its inbox): report them all again; writing one twice changes nothing.
    for k, saved in resume.items():
        channel.written[(k, saved.epoch)] = plans[k].path
        for epoch, metrics in sorted(saved.history.items()):
            channel.report(epoch, {k: metrics})
    try:
        results = train_pack(
            spec,
            report=channel.report,
            stop={k for k, (trial_id, _) in enumerate(trials) if trial_id in stop_ids},
            resume=resume,
            checkpoint=channel.save if checkpoints else None,
            checkpoint_every=plans[0].every if plans else 1,
            exploited=channel.exploited,
        )
    except Exception as exc:  # the user's code may raise its own classes: send text
        raise TrainingError.of(exc) from None
    return TaskResult(node_id, results)


def run_range_test(spec: RangeTestSpec) -> dict[str, dict[str, Any]]:
    """The learning-rate range test on this task's device: per family, its bounds and curve."""
    import dataclasses

    from optisweep.workers.lr_range import lr_range_test

    results = lr_range_test(spec.model_copy(update={"device": _device()}))
    return {name: dataclasses.asdict(result) for name, result in results.items()}


def inspect_workload(workload: dict[str, Any], optimizers: list[str]) -> WorkloadReport:
    """The workload's metrics and whether it packs (one member's memory), or what is wrong
    with it; found here, under the sweep's runtime_env: the server never runs a workload."""
    from optisweep.workers.inspection import inspect_workload as inspect

    return inspect(workload, optimizers)
