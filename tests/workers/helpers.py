"""Helpers for worker tests: a trial to train, and the metrics two runs of it share."""

from __future__ import annotations

from typing import Any

from optisweep.workers.specs import PackSpec
from optisweep.workers.workloads import TIME_METRIC


def user_trial(workload: dict[str, Any], **changes: Any) -> PackSpec:
    """A CPU trial of ``workload`` with Adam at lr 0.05, seed 1, ``changes`` applied."""
    fields: dict[str, Any] = {
        "workload": workload,
        "optimizer": "adam",
        "hyperparameters": {"lr": 0.05},
        "seed": 1,
        "device": "cpu",
    }
    return PackSpec.single(**{**fields, **changes})


def without_time(metrics: dict[str, float]) -> dict[str, float]:
    """``metrics`` but time_seconds, in which two runs of the same trial rightly differ."""
    return {name: value for name, value in metrics.items() if name != TIME_METRIC}
