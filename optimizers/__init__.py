"""The shared optimizer module: registry, schemas, single-model and population paths."""

from optisweep.optimizers.members import MemberConfig, MemberExport
from optisweep.optimizers.param_groups import ParamGroup, ParamInfo, describe_params
from optisweep.optimizers.population import PopulationOptimizer
from optisweep.optimizers.registry import (
    OPTIMIZERS,
    BetaTarget,
    HyperparameterError,
    OptimizerSpec,
    get_spec,
    validate_hyperparameters,
)
from optisweep.optimizers.rule_optimizer import at_average, set_mode
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
    "ParamGroup",
    "ParamInfo",
    "PopulationOptimizer",
    "Schedule",
    "StepSchedule",
    "WarmupSchedule",
    "at_average",
    "create_optimizer",
    "describe_params",
    "get_spec",
    "lr_lambda",
    "lr_multiplier",
    "needs_run_length",
    "resolve_schedule",
    "set_mode",
    "validate_hyperparameters",
]
