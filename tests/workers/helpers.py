"""Helpers for worker tests that compare the metrics of two runs of the same trials."""

from __future__ import annotations

from workers.workloads import TIME_METRIC


def without_time(metrics: dict[str, float]) -> dict[str, float]:
    """``metrics`` but time_seconds, in which two runs of the same trial rightly differ."""
    return {name: value for name, value in metrics.items() if name != TIME_METRIC}
