"""Per-member gradient clipping by global norm, as torch.nn.utils.clip_grad_norm_ per member."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

_CLIP_EPS = 1e-6  # the same guard torch.nn.utils.clip_grad_norm_ adds to the norm


def member_grad_norms(grads: Sequence[Tensor]) -> Tensor:
    """The global L2 norm of each member's gradients: [K] from tensors shaped [K, ...]."""
    per_tensor = [torch.linalg.vector_norm(g.reshape(g.shape[0], -1), dim=1) for g in grads]
    return torch.linalg.vector_norm(torch.stack(per_tensor), dim=0)


def clip_coefficients(norms: Tensor, max_norms: Tensor) -> Tensor:
    """min(1, max_norm / (norm + 1e-6)) per member; an infinite max_norm means no clipping."""
    return torch.clamp(max_norms / (norms + _CLIP_EPS), max=1.0)
