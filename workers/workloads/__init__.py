"""Workloads: what a trial trains (data, model, loss, metrics), built-in or from a plugin."""

from optisweep.workers.workloads.base import (
    TIME_METRIC,
    Built,
    Workload,
    WorkloadConfig,
    WorkloadConfigError,
    numeric_fields,
)
from optisweep.workers.workloads.functional import FunctionWorkload, TrialContext, function_workload
from optisweep.workers.workloads.registry import (
    ENTRY_POINT_GROUP,
    WORKLOADS,
    get_workload,
    load_entrypoint,
    load_workloads,
    parse_workload_config,
    reported_metrics,
    workload_names,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "TIME_METRIC",
    "WORKLOADS",
    "Built",
    "FunctionWorkload",
    "TrialContext",
    "Workload",
    "WorkloadConfig",
    "WorkloadConfigError",
    "function_workload",
    "get_workload",
    "load_entrypoint",
    "load_workloads",
    "numeric_fields",
    "parse_workload_config",
    "reported_metrics",
    "workload_names",
]
