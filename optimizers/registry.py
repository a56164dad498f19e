"""The optimizer registry: one spec per family, shared by the API, the workers and the tests."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from pydantic import ValidationError

from optisweep.optimizers.rule_optimizer import rule_optimizer
from optisweep.optimizers.rules.adadelta import AdadeltaRule
from optisweep.optimizers.rules.adafactor import AdafactorRule
from optisweep.optimizers.rules.adagrad import AdagradRule
from optisweep.optimizers.rules.adam import AdamRule
from optisweep.optimizers.rules.adamax import AdamaxRule
from optisweep.optimizers.rules.base import UpdateRule
from optisweep.optimizers.rules.lion import LionRule
from optisweep.optimizers.rules.momentum import MomentumRule
from optisweep.optimizers.rules.muon import MuonRule
from optisweep.optimizers.rules.nadam import NAdamRule
from optisweep.optimizers.rules.prodigy import ProdigyRule
from optisweep.optimizers.rules.radam import RAdamRule
from optisweep.optimizers.rules.rmsprop import RMSpropRule
from optisweep.optimizers.rules.schedulefree import ScheduleFreeRule
from optisweep.optimizers.rules.sgd import SGDRule
from optisweep.optimizers.schemas import (
    AdadeltaParams,
    AdafactorParams,
    AdagradParams,
    AdamaxParams,
    AdamParams,
    AdamWParams,
    HParams,
    LionParams,
    MomentumParams,
    MuonParams,
    NAdamParams,
    ProdigyParams,
    RAdamParams,
    RMSpropParams,
    ScheduleFreeAdamWParams,
    ScheduleFreeSGDParams,
    SGDParams,
    field_path,
    short_repr,
)


class HyperparameterError(ValueError):
    """A hyperparameter (or optimizer name) that is not valid; the message names field and value."""

    def __init__(self, message: str, *, family: str | None, field: str | None) -> None:
        super().__init__(message)
        self.family = family
        self.field = field


@dataclass(frozen=True)
class BetaTarget:
    """Where a generic beta (beta1 or beta2) lands in a family's own hyperparameters."""

    field: str
    index: int | None = None


@dataclass(frozen=True)
class OptimizerSpec:
    """Everything optisweep knows about one optimizer family."""

    name: str
    params_model: type[HParams]
    torch_class: type[torch.optim.Optimizer]
    rule: UpdateRule
    beta1: BetaTarget | None
    beta2: BetaTarget | None
    state_tensors: int
    """The most state tensors one parameter can need (used to estimate memory)."""
    fused_on_cuda: bool
    """Whether torch.optim has a fused CUDA kernel for this family."""
    description: str
    learning_rate_free: bool = False
    """Whether its lr multiplies a step size it estimates itself (Prodigy: 1 is as estimated),
    so a sweep's shared lr and lr range test leave it at its default lr."""

    @property
    def hyperparameters(self) -> tuple[str, ...]:
        """The family's hyperparameter names, as torch.optim spells them."""
        return tuple(self.params_model.model_fields)

    def validate(self, hyperparameters: Mapping[str, Any] | None = None) -> HParams:
        """Validated hyperparameters with defaults filled in; raises HyperparameterError."""
        try:
            return self.params_model.model_validate(dict(hyperparameters or {}))
        except ValidationError as exc:
            raise _hyperparameter_error(self, exc) from None

    def defaults(self) -> dict[str, Any]:
        """The family's published defaults (torch.optim's, lr included), as JSON values."""
        return self.validate().model_dump(mode="json")

    def with_betas(
        self, hyperparameters: Mapping[str, Any], *, beta1: float | None, beta2: float | None
    ) -> dict[str, Any]:
        """``hyperparameters`` with generic beta1/beta2 set on this family's own fields (if it
        has them)."""
        merged = dict(hyperparameters)
        defaults = self.params_model.model_fields
        for target, value in ((self.beta1, beta1), (self.beta2, beta2)):
            if target is None or value is None:
                continue
            if target.index is None:
                merged[target.field] = value
                continue
            current = merged.get(target.field, defaults[target.field].default)
            items = list(current)
            items[target.index] = value
            merged[target.field] = tuple(items)
        return merged


def _hyperparameter_error(spec: OptimizerSpec, exc: ValidationError) -> HyperparameterError:
    messages = []
    first_field: str | None = None
    for error in exc.errors():
        field = field_path(tuple(error["loc"]))
        first_field = first_field or field or None
        if error["type"] == "extra_forbidden":
            valid = ", ".join(spec.hyperparameters)
            messages.append(f"unknown hyperparameter {short_repr(field)} (valid: {valid})")
            continue
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] != "value_error":
            message = f"{message}, got {short_repr(error.get('input'))}"
        messages.append(f"{field} {message}" if field else message)
    return HyperparameterError(
        f"{spec.name}: " + "; ".join(messages), family=spec.name, field=first_field
    )


_BETAS_0 = BetaTarget("betas", 0)
_BETAS_1 = BetaTarget("betas", 1)

OPTIMIZERS: dict[str, OptimizerSpec] = {
    "sgd": OptimizerSpec(
        name="sgd",
        params_model=SGDParams,
        torch_class=torch.optim.SGD,
        rule=SGDRule(),
        beta1=None,
        beta2=None,
        state_tensors=0,
        fused_on_cuda=True,
        description="Gradient descent; mini-batch size is a training setting.",
    ),
    "momentum": OptimizerSpec(
        name="momentum",
        params_model=MomentumParams,
        torch_class=torch.optim.SGD,
        rule=MomentumRule(),
        beta1=BetaTarget("momentum"),
        beta2=None,
        state_tensors=1,
        fused_on_cuda=True,
        description="SGD with heavy-ball or Nesterov momentum.",
    ),
    "adagrad": OptimizerSpec(
        name="adagrad",
        params_model=AdagradParams,
        torch_class=torch.optim.Adagrad,
        rule=AdagradRule(),
        beta1=None,
        beta2=None,
        state_tensors=1,
        fused_on_cuda=False,
        description="Per-coordinate steps from the sum of squared gradients.",
    ),
    "adadelta": OptimizerSpec(
        name="adadelta",
        params_model=AdadeltaParams,
        torch_class=torch.optim.Adadelta,
        rule=AdadeltaRule(),
        beta1=None,
        beta2=BetaTarget("rho"),
        state_tensors=2,
        fused_on_cuda=False,
        description="Decaying averages of squared gradients and of squared updates.",
    ),
    "rmsprop": OptimizerSpec(
        name="rmsprop",
        params_model=RMSpropParams,
        torch_class=torch.optim.RMSprop,
        rule=RMSpropRule(),
        beta1=None,
        beta2=BetaTarget("alpha"),
        state_tensors=3,
        fused_on_cuda=False,
        description="Steps scaled by a decaying RMS of gradients; centred and momentum optional.",
    ),
    "adam": OptimizerSpec(
        name="adam",
        params_model=AdamParams,
        torch_class=torch.optim.Adam,
        rule=AdamRule(decoupled_weight_decay=False),
        beta1=_BETAS_0,
        beta2=_BETAS_1,
        state_tensors=3,
        fused_on_cuda=True,
        description="Bias-corrected first and second moments; AMSGrad optional.",
    ),
    "adamw": OptimizerSpec(
        name="adamw",
        params_model=AdamWParams,
        torch_class=torch.optim.AdamW,
        rule=AdamRule(decoupled_weight_decay=True),
        beta1=_BETAS_0,
        beta2=_BETAS_1,
        state_tensors=3,
        fused_on_cuda=True,
        description="Adam with decoupled weight decay.",
    ),
    "adamax": OptimizerSpec(
        name="adamax",
        params_model=AdamaxParams,
        torch_class=torch.optim.Adamax,
        rule=AdamaxRule(),
        beta1=_BETAS_0,
        beta2=_BETAS_1,
        state_tensors=2,
        fused_on_cuda=False,
        description="Adam with the infinity norm in place of the second moment.",
    ),
    "nadam": OptimizerSpec(
        name="nadam",
        params_model=NAdamParams,
        torch_class=torch.optim.NAdam,
        rule=NAdamRule(),
        beta1=_BETAS_0,
        beta2=_BETAS_1,
        state_tensors=2,
        fused_on_cuda=False,
        description="Adam with Nesterov momentum.",
    ),
    "radam": OptimizerSpec(
        name="radam",
        params_model=RAdamParams,
        torch_class=torch.optim.RAdam,
        rule=RAdamRule(),
        beta1=_BETAS_0,
        beta2=_BETAS_1,
        state_tensors=2,
        fused_on_cuda=False,
        description="Adam rectified while its adaptive lr's variance is intractable (RAdam).",
    ),
    "lion": OptimizerSpec(
        name="lion",
        params_model=LionParams,
        torch_class=rule_optimizer("lion", LionParams, LionRule()),
        rule=LionRule(),
        beta1=_BETAS_0,
        beta2=_BETAS_1,
        state_tensors=1,
        fused_on_cuda=False,
        description="The sign of interpolated momentum, decoupled weight decay (Lion).",
    ),
    "adafactor": OptimizerSpec(
        name="adafactor",
        params_model=AdafactorParams,
        torch_class=torch.optim.Adafactor,
        rule=AdafactorRule(),
        beta1=None,
        beta2=None,
        state_tensors=1,
        fused_on_cuda=False,
        description="Factored second moment, relative step size, update clipping (Adafactor).",
    ),
    "muon": OptimizerSpec(
        name="muon",
        params_model=MuonParams,
        torch_class=rule_optimizer("muon", MuonParams, MuonRule()),
        rule=MuonRule(),
        beta1=BetaTarget("momentum"),
        beta2=None,
        state_tensors=2,
        fused_on_cuda=False,
        description="Orthogonalised momentum for hidden matrices, AdamW for the rest (Muon).",
    ),
    "schedulefree_adamw": OptimizerSpec(
        name="schedulefree_adamw",
        params_model=ScheduleFreeAdamWParams,
        torch_class=rule_optimizer(
            "schedulefree_adamw", ScheduleFreeAdamWParams, ScheduleFreeRule(adaptive=True)
        ),
        rule=ScheduleFreeRule(adaptive=True),
        beta1=_BETAS_0,
        beta2=_BETAS_1,
        state_tensors=2,
        fused_on_cuda=False,
        description="AdamW without a schedule: evaluated at an average of its steps.",
    ),
    "schedulefree_sgd": OptimizerSpec(
        name="schedulefree_sgd",
        params_model=ScheduleFreeSGDParams,
        torch_class=rule_optimizer(
            "schedulefree_sgd", ScheduleFreeSGDParams, ScheduleFreeRule(adaptive=False)
        ),
        rule=ScheduleFreeRule(adaptive=False),
        beta1=BetaTarget("momentum"),
        beta2=None,
        state_tensors=1,
        fused_on_cuda=False,
        description="SGD with momentum as averaging, without a schedule (schedule-free).",
    ),
    "prodigy": OptimizerSpec(
        name="prodigy",
        params_model=ProdigyParams,
        torch_class=rule_optimizer("prodigy", ProdigyParams, ProdigyRule()),
        rule=ProdigyRule(),
        beta1=_BETAS_0,
        beta2=_BETAS_1,
        state_tensors=4,
        fused_on_cuda=False,
        description="Adam with its step size estimated as it trains, lr left at 1 (Prodigy).",
        learning_rate_free=True,
    ),
}


def get_spec(name: str) -> OptimizerSpec:
    """The spec for ``name``; an unknown name raises HyperparameterError listing valid names."""
    try:
        return OPTIMIZERS[name]
    except (KeyError, TypeError):
        valid = ", ".join(sorted(OPTIMIZERS))
        near = difflib.get_close_matches(name, OPTIMIZERS, 1) if isinstance(name, str) else []
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise HyperparameterError(
            f"unknown optimizer {short_repr(name)}{hint} (valid: {valid})",
            family=None,
            field="optimizer",
        ) from None


def validate_hyperparameters(
    name: str, hyperparameters: Mapping[str, Any] | None = None
) -> HParams:
    """Validate ``hyperparameters`` for family ``name``; errors name the field and the value."""
    return get_spec(name).validate(hyperparameters)
