"""The single-model path: build torch.optim's own implementation from a registry name."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from optisweep.optimizers.registry import OptimizerSpec, get_spec
from optisweep.optimizers.schemas import HParams


def _tensors(params: list[Any]) -> list[Tensor]:
    tensors: list[Tensor] = []
    for item in params:
        if isinstance(item, dict):
            tensors.extend(item["params"])
        else:
            tensors.append(item)
    return tensors


def build_torch_optimizer(
    spec: OptimizerSpec, params: list[Any], hyperparameters: HParams
) -> torch.optim.Optimizer:
    """torch.optim's class for ``spec``: fused on CUDA where torch has it, foreach otherwise."""
    kwargs = hyperparameters.model_dump()
    tensors = _tensors(params)
    on_cuda = bool(tensors) and all(t.is_cuda and t.is_floating_point() for t in tensors)
    if spec.fused_on_cuda and on_cuda:
        kwargs["fused"] = True
    else:
        kwargs["foreach"] = True
    return spec.torch_class(params, **kwargs)


def create_optimizer(
    name: str, params: Iterable[Tensor] | Iterable[dict[str, Any]], **hyperparameters: Any
) -> torch.optim.Optimizer:
    """torch.optim's optimizer for family ``name`` with validated hyperparameters."""
    spec = get_spec(name)
    return build_torch_optimizer(spec, list(params), spec.validate(hyperparameters))
