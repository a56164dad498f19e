"""K members' layers as one: the forward passes that replace a module's own in a fused model.

Each function is bound to a module of a deep copy of the user's model
(``optisweep.workers.fusion.model``) and reads that module's parameters as ``functional_call``
swaps them in: stacked, ``[K, ...]``.
Linear layers are one batched matrix product, convolutions one grouped convolution,
BatchNorm and GroupNorm one normalisation over the K members' channels side by side, LayerNorm
and Embedding one call with per-member parameters. A module these cannot take (an option they
do not cover, a layer type they do not know, a module with parameters of its own) runs its own
forward under vmap, member by member in one batched call, inside the otherwise fused pass.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call
from torch.nn import functional as F
from torch.utils._pytree import tree_flatten, tree_unflatten

from optisweep.workers.fusion.layouts import (
    NotFusableError,
    PackShape,
    members_of,
    per_member,
    prefers_channels_last,
    to_channels,
    to_folded,
)
from optisweep.workers.fusion.vmapping import vmap_members

Forward = Callable[..., Any]
_TENSOR = object()
"""Where a vmapped module's output had a tensor (beside its other leaves, None among them)."""

_CONVOLUTIONS: dict[type[nn.Module], Callable[..., Tensor]] = {
    nn.Conv1d: F.conv1d,
    nn.Conv2d: F.conv2d,
    nn.Conv3d: F.conv3d,
}
_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def _linear(module: nn.Module, shape: PackShape, x: Tensor) -> Tensor:
    assert isinstance(module, nn.Linear)
    weight, bias, fan_in = module.weight, module.bias, module.in_features
    k = shape.members
    if shape.is_channels(x) and k > 1:  # [B, K*in] after a flatten of channels
        if x.dim() != 2 or x.shape[1] != k * fan_in:
            raise NotFusableError(f"Linear({fan_in}) cannot read channels {tuple(x.shape)}")
        rows = x.view(x.shape[0], k, fan_in).transpose(0, 1)
        lead: tuple[int, ...] = (k * x.shape[0],)
    else:
        if x.shape[-1] != fan_in:
            raise NotFusableError(f"Linear({fan_in}) got {tuple(x.shape)}")
        rows, lead = x.reshape(k, -1, fan_in), tuple(x.shape[:-1])
    product = (
        torch.baddbmm(bias.unsqueeze(1), rows, weight.transpose(1, 2))
        if bias is not None
        else torch.bmm(rows, weight.transpose(1, 2))
    )
    return product.reshape(*lead, module.out_features)


def _convolution(module: nn.Module, shape: PackShape, x: Tensor) -> Tensor:
    assert isinstance(module, nn.Conv1d | nn.Conv2d | nn.Conv3d)
    x = _channels_input(module, shape, x, module.in_channels)
    if x.dim() == 4 and prefers_channels_last(x.device):  # a no-op where it already is
        x = x.contiguous(memory_format=torch.channels_last)
    padding = module.padding
    if module.padding_mode != "zeros":
        x = F.pad(x, module._reversed_padding_repeated_twice, mode=module.padding_mode)
        padding = 0  # type: ignore[assignment]
    weight = module.weight.reshape(-1, *module.weight.shape[2:])
    bias = module.bias.reshape(-1) if module.bias is not None else None
    conv = _CONVOLUTIONS[type(module)]
    groups = shape.members * module.groups
    return conv(x, weight, bias, module.stride, padding, module.dilation, groups=groups)


def _channels_input(module: nn.Module, shape: PackShape, x: Tensor, channels: int) -> Tensor:
    """``x`` in the channels layout with ``channels`` per member, moved there if folded."""
    if shape.is_channels(x):
        if x.shape[1] != shape.members * channels:
            raise NotFusableError(f"{type(module).__name__}({channels}) got {tuple(x.shape)}")
        return x
    if x.shape[1] != channels:
        raise NotFusableError(f"{type(module).__name__}({channels}) got {tuple(x.shape)}")
    return to_channels(x, shape, channels_last=prefers_channels_last(x.device))


def _flat(tensor: Tensor | None) -> Tensor | None:
    return None if tensor is None else tensor.reshape(-1)


def _batch_norm(module: nn.Module, shape: PackShape, x: Tensor) -> Tensor:
    """torch's BatchNorm forward over the members' channels side by side; the running
    statistics are updated in place in the stacked buffers, as each member's own would be."""
    assert isinstance(module, nn.modules.batchnorm._BatchNorm)
    x = _channels_input(module, shape, x, module.num_features)
    factor = module.momentum
    if module.training and module.track_running_stats:
        assert module.num_batches_tracked is not None
        module.num_batches_tracked.add_(1)
    use_batch = module.training or (module.running_mean is None and module.running_var is None)
    keep = not module.training or module.track_running_stats
    return F.batch_norm(
        x,
        _flat(module.running_mean) if keep else None,
        _flat(module.running_var) if keep else None,
        _flat(module.weight),
        _flat(module.bias),
        use_batch,
        0.0 if factor is None else factor,
        module.eps,
    )


def _group_norm(module: nn.Module, shape: PackShape, x: Tensor) -> Tensor:
    assert isinstance(module, nn.GroupNorm)
    x = _channels_input(module, shape, x, module.num_channels)
    groups = shape.members * module.num_groups
    return F.group_norm(x, groups, _flat(module.weight), _flat(module.bias), module.eps)


def _layer_norm(module: nn.Module, shape: PackShape, x: Tensor) -> Tensor:
    assert isinstance(module, nn.LayerNorm)
    dims = tuple(module.normalized_shape)
    view, member_dim = members_of(x, shape)
    if tuple(view.shape[view.dim() - len(dims) :]) != dims or view.dim() - len(dims) <= member_dim:
        raise NotFusableError(f"LayerNorm{dims} got {tuple(x.shape)}")
    normed = F.layer_norm(view, dims, eps=module.eps)
    if module.weight is not None and module.bias is not None:  # one pass for both
        weight = per_member(module.weight, view, member_dim)
        normed = torch.addcmul(per_member(module.bias, view, member_dim), normed, weight)
    elif module.weight is not None:
        normed = normed * per_member(module.weight, view, member_dim)
    elif module.bias is not None:
        normed = normed + per_member(module.bias, view, member_dim)
    return normed.reshape(x.shape)


def _embedding(module: nn.Module, shape: PackShape, indices: Tensor) -> Tensor:
    assert isinstance(module, nn.Embedding)
    if shape.is_channels(indices) and shape.members > 1:
        raise NotFusableError(f"Embedding got indices {tuple(indices.shape)} in no folded layout")
    k, vocab = shape.members, module.num_embeddings
    offsets = torch.arange(k, device=indices.device).view(k, 1) * vocab
    looked_up = F.embedding(
        (indices.reshape(k, -1) + offsets).reshape(-1),
        module.weight.reshape(k * vocab, module.embedding_dim),
    )
    return looked_up.reshape(*indices.shape, module.embedding_dim)


def _supported(module: nn.Module) -> Callable[[nn.Module, PackShape, Any], Tensor] | None:
    """The fused forward for this module, or None where its type or options are not covered."""
    if type(module) is nn.Linear:
        return _linear
    if type(module) in _CONVOLUTIONS:
        return _convolution
    if type(module) in _BATCH_NORMS:
        assert isinstance(module, nn.modules.batchnorm._BatchNorm)
        # momentum None is a cumulative average of each member's own count: left to vmap
        return _batch_norm if module.momentum is not None else None
    if type(module) is nn.GroupNorm:
        return _group_norm
    if type(module) is nn.LayerNorm:
        return _layer_norm
    if type(module) is nn.Embedding:
        assert isinstance(module, nn.Embedding)
        plain = module.padding_idx is None and module.max_norm is None
        return _embedding if plain and not module.sparse and not module.scale_grad_by_freq else None
    return None


def fused_forward(module: nn.Module, shape: PackShape) -> Forward | None:
    """The forward pass that runs K members of ``module`` fused, or None if it has none."""
    fused = _supported(module)
    if fused is None:
        return None

    def forward(x: Tensor) -> Tensor:
        return fused(module, shape, x)

    return forward


def vmapped_forward(module: nn.Module, own: nn.Module, shape: PackShape) -> Forward:
    """``module``'s own forward (``own``, an unaltered copy) for each member under vmap, its
    tensor arguments folded: what a fused model does with a module it cannot fuse."""

    def forward(*args: Any, **kwargs: Any) -> Any:
        if any(isinstance(value, Tensor) for value in tree_flatten(kwargs)[0]):
            raise NotFusableError(f"{type(own).__name__} was called with tensor keyword arguments")
        k = shape.members
        own.train(module.training)  # ``own`` is outside the model: it follows its stand-in
        structure: list[Any] = []  # the output's pytree, its non-tensor leaves kept aside

        def member(params: dict[str, Tensor], buffers: dict[str, Tensor], args: Any) -> Any:
            leaves, spec = tree_flatten(functional_call(own, (params, buffers), args, kwargs))
            structure[:] = [spec, [_TENSOR if isinstance(v, Tensor) else v for v in leaves]]
            return tuple(v for v in leaves if isinstance(v, Tensor))

        def folded(value: Any) -> Any:
            if not isinstance(value, Tensor):
                return value
            if shape.is_channels(value) and k > 1:
                value = to_folded(value, shape)
            return value.reshape(k, value.shape[0] // k, *value.shape[1:])

        params: dict[str, Tensor] = dict(module.named_parameters())
        buffers: dict[str, Tensor] = dict(module.named_buffers())
        members = tuple(folded(value) for value in args)
        dims = tuple(0 if isinstance(value, Tensor) else None for value in members)
        tensors = iter(vmap_members(member, (0, 0, dims), params, buffers, members))
        spec, others = structure
        leaves = [next(tensors).flatten(0, 1) if v is _TENSOR else v for v in others]
        return tree_unflatten(leaves, spec)

    return forward
