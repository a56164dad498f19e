"""Ray entry points: train one trial on a worker and report each epoch back to the controller.

Workers hold no database connection. They send every epoch's metrics to the controller's
inbox actor (a Ray actor handle passed in by the controller) and learn from its answer whether
to stop; the controller writes what the inbox collected in batches.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Protocol

import ray
import torch
from pydantic import BaseModel, ConfigDict, Field

from workers.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from workers.lr_range import RangeTestSpec, lr_range_test
from workers.pack import PackSpec, train_pack
from workers.pbt import Exploit
from workers.train import TrialSpec, resolve_device, train_trial


class CheckpointPlan(BaseModel):
    """Where a task keeps a trial's checkpoint and how often it writes it."""

    model_config = ConfigDict(extra="forbid")

    path: str
    """The trial's checkpoint file: resumed from when it exists, then overwritten."""
    every: int = Field(default=1, ge=1)

    def resume(self, device: str) -> Checkpoint | None:
        """The checkpoint to continue from, if an earlier attempt left one."""
        if not Path(self.path).is_file():
            return None
        return load_checkpoint(self.path, device=resolve_device(device))


class _RemoteMethod(Protocol):
    def remote(self, *args: Any) -> Any: ...


class Inbox(Protocol):
    """What a worker needs of the controller's inbox actor."""

    started: _RemoteMethod
    """``started(trial_id, attempt, node_id, device, resumed_epoch)``: the attempt began on this
    node, continuing after ``resumed_epoch`` (0: from scratch)."""
    report: _RemoteMethod
    """``report(trial_id, attempt, epoch, metrics, checkpoint) -> bool``: store an epoch (and the
    checkpoint path written for it, or None); True means stop."""
    started_pack: _RemoteMethod
    """``started_pack([(trial_id, attempt, resumed_epoch)], node_id, device, pack_id)
    -> [trial ids to stop]``."""
    report_pack: _RemoteMethod
    """``report_pack(epoch, [(trial_id, attempt, metrics, checkpoint)]) -> [trial ids to stop]``."""
    exploited: _RemoteMethod
    """``exploited(epoch, [(trial_id, attempt, source trial id, hyperparameters)])``: PBT."""


def run_trial(
    trial: dict[str, Any],
    *,
    trial_id: int,
    attempt: int,
    inbox: Inbox,
    checkpoint: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train one trial (a TrialSpec as a dict) here; return its status, epochs and last metrics.

    The device is CUDA when Ray gave this task a GPU (Ray then sets CUDA_VISIBLE_DEVICES to
    it), else the CPU. With a ``checkpoint`` plan (a CheckpointPlan as a dict) the trial
    continues from the checkpoint an earlier attempt left and writes its own.
    """
    device = "cuda" if ray.get_gpu_ids() else "cpu"
    spec = TrialSpec.model_validate({**trial, "device": device})
    plan = CheckpointPlan.model_validate(checkpoint) if checkpoint is not None else None
    resume = plan.resume(device) if plan is not None else None
    resumed = resume.epoch if resume is not None else 0
    node_id = ray.get_runtime_context().get_node_id()
    ray.get(inbox.started.remote(trial_id, attempt, node_id, device, resumed))
    stop_requested = False
    written: dict[int, str] = {}
    """Epoch -> the checkpoint written for it, told to the controller with that epoch."""

    def report(epoch: int, metrics: dict[str, float]) -> None:
        nonlocal stop_requested
        path = written.get(epoch)
        stop_requested = bool(ray.get(inbox.report.remote(trial_id, attempt, epoch, metrics, path)))

    save = None
    if plan is not None:
        path = plan.path

        def save(ckpt: Checkpoint) -> None:
            save_checkpoint(path, ckpt)
            written[ckpt.epoch] = path

        if resume is not None:  # the checkpoint may be ahead of what the controller recorded
            written[resume.epoch] = path
            report(resume.epoch, resume.metrics)
    result = train_trial(
        spec,
        report=report,
        should_stop=lambda: stop_requested,
        resume=resume,
        checkpoint=save,
        checkpoint_every=plan.every if plan is not None else 1,
    )
    return {
        "status": result.status,
        "epochs_run": result.epochs_run,
        "metrics": result.metrics,
        "device": result.device,
        "node_id": node_id,
    }


def run_pack(
    pack: dict[str, Any],
    *,
    trials: list[tuple[int, int]],
    pack_id: str,
    inbox: Inbox,
    checkpoints: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Train a pack (a PackSpec as a dict) whose members are these (trial id, attempt)s.

    Reports every member's metrics each epoch in one call and stops the members the inbox
    names; returns one result per member, in order. With ``checkpoints`` (one CheckpointPlan
    per member, as dicts) each member continues from the checkpoint an earlier attempt left
    and the pack writes every member's checkpoint.
    """
    device = "cuda" if ray.get_gpu_ids() else "cpu"
    spec = PackSpec.model_validate({**pack, "device": device})
    plans = [CheckpointPlan.model_validate(c) for c in checkpoints] if checkpoints else None
    resume: dict[int, Checkpoint] = {}
    for k, plan in enumerate(plans or []):
        saved = plan.resume(device)
        if saved is not None:
            resume[k] = saved
    node_id = ray.get_runtime_context().get_node_id()
    started = [
        (trial_id, attempt, resume[k].epoch if k in resume else 0)
        for k, (trial_id, attempt) in enumerate(trials)
    ]
    stop_ids = set(ray.get(inbox.started_pack.remote(started, node_id, device, pack_id)))
    trial_ids = [trial_id for trial_id, _ in trials]
    written: dict[tuple[int, int], str] = {}
    """(member, epoch) -> the checkpoint written for it, told to the controller with it."""

    def report(epoch: int, metrics: dict[int, dict[str, float]]) -> set[int]:
        reports = [
            (trials[k][0], trials[k][1], values, written.get((k, epoch)))
            for k, values in metrics.items()
        ]
        stop = set(ray.get(inbox.report_pack.remote(epoch, reports)))
        return {k for k in metrics if trial_ids[k] in stop}

    def exploited(epoch: int, exploits: list[Exploit]) -> None:
        items = [
            (
                trials[e.target][0],
                trials[e.target][1],
                trial_ids[e.source],
                e.config.validated().model_dump(mode="json"),
            )
            for e in exploits
        ]
        inbox.exploited.remote(epoch, items)  # ordered with this worker's later reports

    def save(k: int, ckpt: Checkpoint) -> None:
        if plans is not None:
            save_checkpoint(plans[k].path, ckpt)
            written[(k, ckpt.epoch)] = plans[k].path

    # A checkpoint may be ahead of what the controller recorded: report its epoch again.
    for k, saved in resume.items():
        if plans is not None:
            written[(k, saved.epoch)] = plans[k].path
        report(saved.epoch, {k: saved.metrics})
    results = train_pack(
        spec,
        report=report,
        stop={k for k, trial_id in enumerate(trial_ids) if trial_id in stop_ids},
        resume=resume,
        checkpoint=save if plans is not None else None,
        checkpoint_every=plans[0].every if plans else 1,
        exploited=exploited,
    )
    return [
        {
            "status": result.status,
            "epochs_run": result.epochs_run,
            "metrics": result.metrics,
            "device": result.device,
            "node_id": node_id,
        }
        for result in results
    ]


def run_range_test(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The learning-rate range test (a RangeTestSpec as a dict) on this task's device."""
    device = "cuda" if ray.get_gpu_ids() else "cpu"
    results = lr_range_test(RangeTestSpec.model_validate({**spec, "device": device}))
    return {name: dataclasses.asdict(result) for name, result in results.items()}


def warm_up() -> str:
    """Import the training stack in a fresh worker, so the first trials skip that cost."""
    from workers.workloads.digits import digits_split

    digits_split(torch.device("cpu"))
    # The first torch.optim optimizer a process builds imports torch._dynamo (about 2 s here);
    # packs build them to export members (compaction, checkpoints).
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    return ray.get_runtime_context().get_node_id()
