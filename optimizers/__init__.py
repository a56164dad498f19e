"""The shared optimizer module: registry, schemas, single-model and population paths."""

from optisweep.optimizers.population import MemberConfig, MemberExport, PopulationOptimizer
from optisweep.optimizers.registry import (
    OPTIMIZERS,
    BetaTarget,
    HyperparameterError,
    OptimizerSpec,
    get_spec,
    validate_hyperparameters,
)
from optisweep.optimizers.schedules import (
    ConstantSchedule,
    CosineSchedule,
    ExponentialSchedule,
    Schedule,
    StepSchedule,
    WarmupSchedule,
    lr_lambda,
    lr_multiplier,
    needs_run_length,
    resolve_schedule,
)
from optisweep.optimizers.single import create_optimizer

__all__ = [
    "OPTIMIZERS",
    "BetaTarget",
    "ConstantSchedule",
    "CosineSchedule",
    "ExponentialSchedule",
    "HyperparameterError",
    "MemberConfig",
    "MemberExport",
    "OptimizerSpec",
    "PopulationOptimizer",
    "Schedule",
    "StepSchedule",
    "WarmupSchedule",
    "create_optimizer",
    "get_spec",
    "lr_lambda",
    "lr_multiplier",
    "needs_run_length",
    "resolve_schedule",
    "validate_hyperparameters",
]
