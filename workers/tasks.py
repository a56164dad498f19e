"""Ray entry points: train one trial on a worker and report each epoch back to the controller.

Workers hold no database connection. They send every epoch's metrics to the controller's
inbox actor (a Ray actor handle passed in by the controller) and learn from its answer whether
to stop; the controller writes what the inbox collected in batches.
"""

from __future__ import annotations

from typing import Any, Protocol

import ray
import torch

from workers.pack import PackSpec, train_pack
from workers.train import TrialSpec, train_trial


class _RemoteMethod(Protocol):
    def remote(self, *args: Any) -> Any: ...


class Inbox(Protocol):
    """What a worker needs of the controller's inbox actor."""

    started: _RemoteMethod
    """``started(trial_id, attempt, node_id, device)``: the attempt began on this node."""
    report: _RemoteMethod
    """``report(trial_id, attempt, epoch, metrics) -> bool``: store an epoch; True means stop."""
    started_pack: _RemoteMethod
    """``started_pack([(trial_id, attempt)], node_id, device, pack_id) -> [trial ids to stop]``."""
    report_pack: _RemoteMethod
    """``report_pack(epoch, [(trial_id, attempt, metrics)]) -> [trial ids to stop]``."""


def run_trial(
    trial: dict[str, Any], *, trial_id: int, attempt: int, inbox: Inbox
) -> dict[str, Any]:
    """Train one trial (a TrialSpec as a dict) here; return its status, epochs and last metrics.

    The device is CUDA when Ray gave this task a GPU (Ray then sets CUDA_VISIBLE_DEVICES to
    it), else the CPU.
    """
    device = "cuda" if ray.get_gpu_ids() else "cpu"
    spec = TrialSpec.model_validate({**trial, "device": device})
    node_id = ray.get_runtime_context().get_node_id()
    ray.get(inbox.started.remote(trial_id, attempt, node_id, device))
    stop_requested = False

    def report(epoch: int, metrics: dict[str, float]) -> None:
        nonlocal stop_requested
        stop_requested = bool(ray.get(inbox.report.remote(trial_id, attempt, epoch, metrics)))

    result = train_trial(spec, report=report, should_stop=lambda: stop_requested)
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
) -> list[dict[str, Any]]:
    """Train a pack (a PackSpec as a dict) whose members are these (trial id, attempt)s.

    Reports every member's metrics each epoch in one call and stops the members the inbox
    names; returns one result per member, in order.
    """
    device = "cuda" if ray.get_gpu_ids() else "cpu"
    spec = PackSpec.model_validate({**pack, "device": device})
    node_id = ray.get_runtime_context().get_node_id()
    stop_ids = set(ray.get(inbox.started_pack.remote(trials, node_id, device, pack_id)))
    trial_ids = [trial_id for trial_id, _ in trials]

    def report(epoch: int, metrics: dict[int, dict[str, float]]) -> set[int]:
        reports = [(trials[k][0], trials[k][1], values) for k, values in metrics.items()]
        stop = set(ray.get(inbox.report_pack.remote(epoch, reports)))
        return {k for k in metrics if trial_ids[k] in stop}

    stop = {k for k, trial_id in enumerate(trial_ids) if trial_id in stop_ids}
    results = train_pack(spec, report=report, stop=stop)
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


def warm_up() -> str:
    """Import the training stack in a fresh worker, so the first trials skip that cost."""
    from workers.workloads.digits import digits_split

    digits_split(torch.device("cpu"))
    return ray.get_runtime_context().get_node_id()
