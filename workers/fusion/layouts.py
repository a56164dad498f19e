"""Where a pack's K members sit in the tensors of a fused forward pass, and moves between layouts.

Two layouts, told apart by the batch's row count B (which the fused forward pass knows):

- folded, ``[K*B, ...]``: member k's examples are rows k*B .. k*B+B-1. Anything that treats
  examples independently (activations, pooling, reshapes of the other dimensions, attention,
  a residual sum) runs on it unchanged, and K Linear layers are one batched matrix product.
- channels, ``[B, K*C, ...]``: member k's channels are k*C .. k*C+C-1, HFTA's horizontal
  fusion (Wang et al., MLSys 2021): K convolutions are one grouped convolution and K BatchNorms
  one BatchNorm over K*C channels, with no copies between them.

The inputs enter folded (``tile``); a convolution or normalisation over channels moves its
input to channels once, and a Linear layer reads either.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


class NotFusableError(Exception):
    """This model, or this call, cannot run fused; the pack runs it under vmap instead."""


@dataclass
class PackShape:
    """The current call's shape: K members, B rows of the batch. Set before each forward pass."""

    members: int = 1
    rows: int = 1

    def is_channels(self, x: Tensor) -> bool:
        """Whether ``x`` is in the channels layout (else it is folded)."""
        if x.dim() >= 2 and x.shape[0] == self.rows:
            return True
        if x.shape[0] % self.members:
            raise NotFusableError(f"a tensor of shape {tuple(x.shape)} is in neither layout")
        return False


def tile(x: Tensor, members: int) -> Tensor:
    """A shared input ``[B, ...]`` as K folded copies ``[K*B, ...]``."""
    return x.unsqueeze(0).expand(members, *x.shape).reshape(members * x.shape[0], *x.shape[1:])


def to_channels(x: Tensor, shape: PackShape, *, channels_last: bool = False) -> Tensor:
    """Folded ``[K*B, C, ...]`` as channels ``[B, K*C, ...]`` (one copy); 4-D results in the
    channels-last memory format where asked (what fast CPU convolutions and pooling read)."""
    k, rows = shape.members, x.shape[0] // shape.members
    split = x.reshape(k, rows, *x.shape[1:])
    if channels_last and x.dim() == 4:
        _, _, c, h, w = split.shape  # memory order [B, H, W, K, C] is channels-last [B, K*C, H, W]
        memory = split.permute(1, 3, 4, 0, 2).contiguous()
        return memory.view(rows, h, w, k * c).permute(0, 3, 1, 2)
    return split.transpose(0, 1).reshape(rows, k * x.shape[1], *x.shape[2:])


def to_folded(x: Tensor, shape: PackShape) -> Tensor:
    """Channels ``[B, K*C, ...]`` as folded ``[K*B, C, ...]`` (one copy)."""
    rows, k = x.shape[0], shape.members
    split = x.reshape(rows, k, x.shape[1] // k, *x.shape[2:]).transpose(0, 1)
    return split.reshape(k * rows, *split.shape[2:])


def member_major(x: Tensor, shape: PackShape) -> Tensor:
    """A model's output in either layout as ``[K, B, ...]``: member k's output is row k."""
    k = shape.members
    if shape.is_channels(x):
        if x.shape[1] % k:
            raise NotFusableError(f"an output of shape {tuple(x.shape)} does not split into {k}")
        return x.view(x.shape[0], k, x.shape[1] // k, *x.shape[2:]).transpose(0, 1)
    return x.view(k, x.shape[0] // k, *x.shape[1:])


def members_of(x: Tensor, shape: PackShape) -> tuple[Tensor, int]:
    """``x`` viewed with an explicit member dimension, and where it is: folded ``[K, B, ...]``
    (dimension 0), channels ``[B, K, C, ...]`` (dimension 1)."""
    k = shape.members
    if shape.is_channels(x):
        if x.shape[1] % k:
            raise NotFusableError(f"{tuple(x.shape)} has no {k} channel groups")
        return x.view(x.shape[0], k, x.shape[1] // k, *x.shape[2:]), 1
    return x.view(k, x.shape[0] // k, *x.shape[1:]), 0


def per_member(param: Tensor, view: Tensor, member_dim: int) -> Tensor:
    """A stacked parameter ``[K, *trailing]`` shaped to broadcast against ``view`` (from
    ``members_of``): its trailing dimensions at the end, K at ``member_dim``."""
    trailing = param.dim() - 1
    middle = view.dim() - member_dim - 1 - trailing
    if middle < 0:
        raise NotFusableError(f"a parameter {tuple(param.shape)} does not fit {tuple(view.shape)}")
    ones = [1] * member_dim
    return param.view(*ones, param.shape[0], *([1] * middle), *param.shape[1:])


def prefers_channels_last(device: torch.device) -> bool:
    """Whether fused convolutions run in the channels-last memory format on ``device``.

    On the CPU, NCHW max pooling was 5-16x slower than channels-last and the fused CNN pack
    2.5x ahead of one trial at a time only in channels-last (benchmarks/README.md); on CUDA it
    has not been measured, so torch's default layout stays.
    """
    return device.type == "cpu"
