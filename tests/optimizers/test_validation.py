"""Bad hyperparameters raise a ValueError that names the field and the value."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from optisweep.optimizers import (
    OPTIMIZERS,
    HyperparameterError,
    MemberConfig,
    create_optimizer,
    get_spec,
    validate_hyperparameters,
)

_UNIT_FIELDS = [
    ("momentum", "momentum", None),
    ("adadelta", "rho", None),
    ("rmsprop", "alpha", None),
    ("rmsprop", "momentum", None),
    ("adam", "betas", 0),
    ("adam", "betas", 1),
    ("adamw", "betas", 1),
    ("adamax", "betas", 0),
    ("nadam", "betas", 1),
]
_EPS_FAMILIES = ["adagrad", "adadelta", "rmsprop", "adam", "adamw", "adamax", "nadam"]


def _with(name: str, field: str, index: int | None, value: float) -> dict[str, Any]:
    if index is None:
        return {field: value}
    betas = list(get_spec(name).params_model.model_fields[field].default)
    betas[index] = value
    return {field: tuple(betas)}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_defaults_are_valid_and_reach_torch(name: str) -> None:
    hyperparameters = validate_hyperparameters(name)
    assert hyperparameters.lr > 0
    optimizer = create_optimizer(name, [torch.zeros(3, requires_grad=True)])
    assert optimizer.param_groups[0]["lr"] == hyperparameters.lr
    assert optimizer.param_groups[0]["foreach"] is True  # CPU: foreach, never fused


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@given(lr=st.one_of(st.floats(max_value=0.0), st.just(math.inf), st.just(math.nan)))
def test_lr_must_be_finite_and_positive(name: str, lr: float) -> None:
    with pytest.raises(HyperparameterError) as info:
        validate_hyperparameters(name, {"lr": lr})
    assert info.value.field == "lr"
    assert f"{name}: lr must be finite and > 0, got {lr!r}" in str(info.value)


@pytest.mark.parametrize(("name", "field", "index"), _UNIT_FIELDS)
@given(value=st.one_of(st.floats(min_value=1.0), st.floats(max_value=-1e-300), st.just(math.nan)))
def test_betas_and_decays_must_be_in_unit_interval(
    name: str, field: str, index: int | None, value: float
) -> None:
    with pytest.raises(HyperparameterError) as info:
        validate_hyperparameters(name, _with(name, field, index, value))
    where = field if index is None else f"{field}[{index}]"
    assert info.value.field == where
    assert f"{name}: {where} must be in [0, 1), got {value!r}" in str(info.value)


@pytest.mark.parametrize(("name", "field", "index"), _UNIT_FIELDS)
@given(value=st.floats(min_value=0.0, max_value=1.0, exclude_max=True))
def test_values_in_unit_interval_are_accepted(
    name: str, field: str, index: int | None, value: float
) -> None:
    hyperparameters = validate_hyperparameters(name, _with(name, field, index, value))
    got = getattr(hyperparameters, field)
    assert (got if index is None else got[index]) == value


@pytest.mark.parametrize("name", _EPS_FAMILIES)
@given(eps=st.one_of(st.floats(max_value=0.0), st.just(math.nan)))
def test_eps_must_be_positive(name: str, eps: float) -> None:
    with pytest.raises(HyperparameterError, match=rf"{name}: eps must be finite and > 0"):
        validate_hyperparameters(name, {"eps": eps})


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@given(weight_decay=st.one_of(st.floats(max_value=-1e-300), st.just(math.inf)))
def test_weight_decay_must_be_non_negative(name: str, weight_decay: float) -> None:
    with pytest.raises(HyperparameterError) as info:
        validate_hyperparameters(name, {"weight_decay": weight_decay})
    assert info.value.field == "weight_decay"
    assert repr(weight_decay) in str(info.value)


def test_unknown_family_lists_valid_names() -> None:
    with pytest.raises(HyperparameterError) as info:
        create_optimizer("adamz", [])
    message = str(info.value)
    assert "unknown optimizer 'adamz'" in message
    assert all(name in message for name in OPTIMIZERS)
    assert info.value.field == "optimizer"


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_unknown_hyperparameter_is_rejected_not_ignored(name: str) -> None:
    with pytest.raises(HyperparameterError) as info:
        validate_hyperparameters(name, {"lr": 0.1, "betaz": 0.9})
    assert f"{name}: unknown hyperparameter 'betaz'" in str(info.value)
    assert "lr" in str(info.value)  # lists the valid names


def test_nesterov_needs_momentum_and_no_dampening() -> None:
    with pytest.raises(HyperparameterError, match="nesterov requires momentum > 0"):
        validate_hyperparameters("momentum", {"nesterov": True, "dampening": 0.5})


def test_wrong_type_names_field_and_value() -> None:
    with pytest.raises(HyperparameterError, match=r"adam: lr .*got 'fast'"):
        validate_hyperparameters("adam", {"lr": "fast"})


def test_member_config_rejects_bad_hyperparameters_schedule_and_clip() -> None:
    with pytest.raises(ValueError, match=r"adam: betas\[1\] must be in \[0, 1\), got 1.2"):
        MemberConfig(optimizer="adam", hyperparameters={"betas": (0.9, 1.2)})
    with pytest.raises(ValueError, match="clip_norm"):
        MemberConfig(optimizer="sgd", clip_norm=-1.0)
    with pytest.raises(ValueError, match="step_size"):
        MemberConfig.model_validate(
            {"optimizer": "sgd", "schedule": {"kind": "step", "step_size": 0}}
        )
    with pytest.raises(ValueError, match="kind"):
        MemberConfig.model_validate({"optimizer": "sgd", "schedule": {"kind": "sawtooth"}})


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_betas_map_onto_each_family(name: str) -> None:
    spec = get_spec(name)
    mapped = spec.with_betas({}, beta1=0.81, beta2=0.92)
    hyperparameters = spec.validate(mapped)
    for target, value in ((spec.beta1, 0.81), (spec.beta2, 0.92)):
        if target is None:
            continue
        got = getattr(hyperparameters, target.field)
        assert (got if target.index is None else got[target.index]) == value
    if spec.beta1 is None and spec.beta2 is None:
        assert mapped == {}
