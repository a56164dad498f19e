"""What users write against to tune their own code: a workload's config and built parts, the
function-workload API (``TrialContext``, ``function_workload``), and trying a trial outside a
sweep (``train_trial(PackSpec.single(...))``, ``load_checkpoint``). Imports torch."""

from optisweep.workers.checkpoint import Checkpoint, load_checkpoint
from optisweep.workers.specs import PackSpec, TrialResult
from optisweep.workers.train import train_pack, train_trial
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
    "Checkpoint",
    "FunctionWorkload",
    "PackSpec",
    "TrialContext",
    "TrialResult",
    "Workload",
    "WorkloadConfig",
    "WorkloadConfigError",
    "function_workload",
    "load_checkpoint",
    "train_pack",
    "train_trial",
]
