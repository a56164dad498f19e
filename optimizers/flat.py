"""Stacked parameters side by side in one [K, N] buffer, so a step touches one tensor, not P.

A population updates each family group with a handful of elementwise kernels per parameter
tensor; a model of P tensors costs P times the launches. ``FlatParameters`` keeps the stacked
[K, ...] tensors as column blocks of one [K, N] buffer and their gradients as blocks of
another, so the whole step runs over one tensor per group. The per-tensor views stay the
parameters everyone else sees: models are called with them, exports and checkpoints read them.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import torch
from torch import Tensor

# A block of a [K, N] buffer is strided, not dense: backward says so once, on this layout only.
warnings.filterwarnings("ignore", message="grad and param do not obey the gradient layout")


class FlatParameters:
    """[K, ...] tensors as views of one [K, N] buffer (``data``), gradients of another (``grad``).

    ``params`` are leaf tensors that require grad and share ``data``'s storage; each one's
    ``.grad`` is its block of ``grad``, into which backward accumulates in place.
    """

    def __init__(self, tensors: Sequence[Tensor]) -> None:
        if not tensors:
            raise ValueError("tensors: nothing to flatten")
        first = tensors[0]
        for i, tensor in enumerate(tensors):
            if (tensor.dtype, tensor.device) != (first.dtype, first.device):
                raise ValueError(
                    f"tensors[{i}]: {tensor.dtype} on {tensor.device}, but tensors[0] is "
                    f"{first.dtype} on {first.device}"
                )
            if tensor.dim() == 0 or tensor.shape[0] != first.shape[0]:
                expected, got = first.shape[0], list(tensor.shape)
                raise ValueError(f"tensors[{i}]: expected shape [{expected}, ...], got {got}")
        self.shapes = [tuple(t.shape[1:]) for t in tensors]
        sizes = [math.prod(shape) for shape in self.shapes]
        self.offsets = [sum(sizes[:i]) for i in range(len(sizes) + 1)]
        rows = first.shape[0]
        self.data = torch.cat([t.detach().reshape(rows, -1) for t in tensors], dim=1)
        self.grad = torch.zeros_like(self.data)
        self.params = [view.detach().requires_grad_() for view in self.views(self.data)]
        self._grads = self.views(self.grad)
        self.zero_grad()

    def views(self, flat: Tensor) -> list[Tensor]:
        """The blocks of a [k, N] tensor shaped like the parameters ([k, ...] each)."""
        k = flat.shape[0]
        return [
            flat[:, start:end].view(k, *shape)
            for start, end, shape in zip(self.offsets, self.offsets[1:], self.shapes, strict=False)
        ]

    def zero_grad(self) -> None:
        """Zero the gradient buffer and make every parameter's ``.grad`` its block again."""
        self.grad.zero_()
        for param, grad in zip(self.params, self._grads, strict=True):
            if param.grad is not grad:
                param.grad = grad

    def grads_in_place(self) -> bool:
        """Whether every parameter's gradient is still its block of ``grad``."""
        return all(param.grad is grad for param, grad in zip(self.params, self._grads, strict=True))
