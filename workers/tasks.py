"""Ray entry points: train one trial on a worker and report each epoch back to the controller.

Workers hold no database connection. They send every epoch's metrics to the controller's
inbox actor (a Ray actor handle passed in by the controller) and learn from its answer whether
to stop; the controller writes what the inbox collected in batches.
"""

from __future__ import annotations

from typing import Any, Protocol

import ray

from workers.train import TrialSpec, train_trial


class _RemoteMethod(Protocol):
    def remote(self, *args: Any) -> Any: ...


class Inbox(Protocol):
    """What a worker needs of the controller's inbox actor."""

    started: _RemoteMethod
    """``started(trial_id, attempt, node_id, device)``: the attempt began on this node."""
    report: _RemoteMethod
    """``report(trial_id, attempt, epoch, metrics) -> bool``: store an epoch; True means stop."""


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
