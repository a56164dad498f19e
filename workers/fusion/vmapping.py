"""vmap over a pack's members, as the vmapped pass and the fused pass's fallback layers run it.

On CUDA, attention under vmap never takes SDPA's memory-efficient kernel: its backward fails
under vmap ("LSE is not correctly aligned", a limitation PyTorch knows of). On an H200 with
torch 2.11 (benchmarks/README.md) that kernel failed for float32 and bfloat16, where it is
also what CUDA picks for float32; the math kernel passed for both, flash and cuDNN for
bfloat16 (they take no float32). The fused pass folds attention into one SDPA call without
vmap, so its speed is untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

from torch import Tensor
from torch.func import vmap
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils._pytree import tree_flatten

UNDER_VMAP = [SDPBackend.FLASH_ATTENTION, SDPBackend.CUDNN_ATTENTION, SDPBackend.MATH]
"""The SDPA kernels whose backward works under vmap on CUDA."""


def vmap_members(function: Callable[..., Any], in_dims: tuple[Any, ...], *args: Any) -> Any:
    """``function`` for each member (its own random draws, e.g. Dropout's masks) under vmap."""
    tensors = [leaf for leaf in tree_flatten(args)[0] if isinstance(leaf, Tensor)]
    on_cuda = any(tensor.is_cuda for tensor in tensors)
    with sdpa_kernel(UNDER_VMAP) if on_cuda else nullcontext():
        return vmap(function, in_dims=in_dims, randomness="different")(*args)
