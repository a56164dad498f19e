"""Packs' forward passes fused: K members' layers as one batched, grouped or wide layer.

``StackedForward`` is what packs, PBT, the lr range test and the memory probe train through:
the fused pass (``optisweep.workers.fusion.model``) where it agrees with vmap's, vmap otherwise.
"""

from optisweep.workers.fusion.layouts import NotFusableError
from optisweep.workers.fusion.model import (
    FUSE_ENV,
    FusedModel,
    StackedForward,
    fuse_model,
    fusion_enabled,
)

__all__ = [
    "FUSE_ENV",
    "FusedModel",
    "NotFusableError",
    "StackedForward",
    "fuse_model",
    "fusion_enabled",
]
