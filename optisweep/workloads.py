"""What users write against to tune their own code: a workload's config, its built parts, and
the function-workload API (``TrialContext``, ``function_workload``). Imports torch."""

from optisweep.workers.workloads import (
    TIME_METRIC,
    Built,
    FunctionWorkload,
    TrialContext,
    Workload,
    WorkloadConfig,
    WorkloadConfigError,
    function_workload,
)

__all__ = [
    "TIME_METRIC",
    "Built",
    "FunctionWorkload",
    "TrialContext",
    "Workload",
    "WorkloadConfig",
    "WorkloadConfigError",
    "function_workload",
]
