"""A population's member as configuration (``MemberConfig``) and as plain tensors
(``MemberExport``): what a trial's optimizer is, and how one member leaves or rejoins a pack."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator
from torch import Tensor

from optisweep.optimizers.param_groups import (
    ParamGroup,
    ParamInfo,
    assign,
    describe_params,
    torch_param_groups,
)
from optisweep.optimizers.registry import OptimizerSpec, get_spec
from optisweep.optimizers.rules.base import Variant
from optisweep.optimizers.schedules import ConstantSchedule, Schedule
from optisweep.optimizers.schemas import HParams, PositiveFloat
from optisweep.optimizers.single import build_torch_optimizer

MAX_PARAM_GROUPS = 16


def one_lr_error(optimizer: str, multiplier: object) -> str:
    """Why a family whose step size is one estimate over every parameter (Prodigy) refuses a
    group's own lr, as its reference does."""
    return (
        f"{optimizer} takes one lr for every parameter (its step size is one estimate over "
        f"all of them); set only weight_decay, got {multiplier!r}"
    )


class MemberConfig(BaseModel):
    """One member of a population: its family, hyperparameters, parameter groups, lr schedule
    and clipping."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    optimizer: str
    hyperparameters: dict[str, Any] = Field(
        default_factory=dict, validation_alias=AliasChoices("hyperparameters", "hparams")
    )
    """The family's hyperparameters (``hparams`` is read too: checkpoints written before
    the rename store that key)."""
    param_groups: list[ParamGroup] = Field(default_factory=list, max_length=MAX_PARAM_GROUPS)
    """Rules that give some parameters their own weight decay or lr multiplier (the first
    rule that selects a parameter wins; the rest keep ``hyperparameters``)."""
    schedule: Schedule = ConstantSchedule()
    clip_norm: PositiveFloat | None = None
    """Clip this member's gradients to this global L2 norm (None: no clipping)."""

    @model_validator(mode="after")
    def _valid_hyperparameters(self) -> MemberConfig:
        spec = get_spec(self.optimizer)
        spec.validate(self.hyperparameters)
        if spec.rule.reduces:
            for index, group in enumerate(self.param_groups):
                if group.lr_multiplier not in (None, 1.0):
                    message = one_lr_error(self.optimizer, group.lr_multiplier)
                    raise ValueError(f"param_groups[{index}].lr_multiplier: {message}")
        return self

    @property
    def spec(self) -> OptimizerSpec:
        """The registry spec of this member's family."""
        return get_spec(self.optimizer)

    def validated(self) -> HParams:
        """This member's hyperparameters, validated and with defaults filled in."""
        return self.spec.validate(self.hyperparameters)

    def variant(self) -> Variant:
        """The code path this member steps through: weight decay counts as on when any of
        its parameter groups decays, even if its own ``weight_decay`` is 0."""
        hyperparameters = self.validated()
        decays = [g.weight_decay for g in self.param_groups if g.weight_decay]
        if decays and hyperparameters.weight_decay == 0:
            hyperparameters = hyperparameters.model_copy(update={"weight_decay": max(decays)})
        return self.spec.rule.variant(hyperparameters)

    def torch_optimizer(
        self, params: Sequence[Tensor], param_info: Sequence[ParamInfo] | None = None
    ) -> torch.optim.Optimizer:
        """This member's optimizer for one model (torch.optim's, or its family's own), with
        its parameter groups as torch ``param_groups`` (``param_info`` describes ``params``)."""
        hyperparameters = self.validated()
        params = list(params)
        if param_info is not None and len(param_info) != len(params):
            raise ValueError(f"param_info: expected {len(params)} entries, got {len(param_info)}")
        roles = self.spec.rule.roles(param_info, [tuple(p.shape) for p in params])
        if not self.param_groups:
            if not any(roles):
                return build_torch_optimizer(self.spec, params, hyperparameters)
            return build_torch_optimizer(
                self.spec, [{"params": params, "roles": list(roles)}], hyperparameters
            )
        if param_info is None:
            raise ValueError(
                "param_groups: selecting parameters needs the model (its names and modules); "
                "pass the model, not only its parameters"
            )
        assignment = assign(self.param_groups, param_info)
        groups = torch_param_groups(
            params, self.param_groups, assignment, lr=hyperparameters.lr, roles=roles
        )
        return build_torch_optimizer(self.spec, groups, hyperparameters)

    def model_optimizer(self, model: torch.nn.Module) -> torch.optim.Optimizer:
        """``torch_optimizer`` over ``model``'s parameters, its groups selected from it."""
        return self.torch_optimizer(list(model.parameters()), describe_params(model))


@dataclass
class MemberExport:
    """One member as plain tensors plus a torch.optim state dict: checkpoint it or go on alone."""

    config: MemberConfig
    params: list[Tensor]
    """The member's parameters, without the member dimension."""
    optimizer_state: dict[str, Any]
    """A state dict for ``config.torch_optimizer(params, ...)``."""
    step: int
    schedule_step: int
    lr_multiplier: float
