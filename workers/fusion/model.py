"""A user's model fused for a pack without changing its code, checked against vmap before use.

``fuse_model`` walks the model's modules: those ``optisweep.workers.fusion.layers`` knows get a
fused forward, a module with parameters of its own that it does not know runs under vmap inside the
fused pass, and everything without parameters (activations, pooling, reshapes, the model's
own ``forward`` code) runs unchanged on the folded or channels tensors. Code that mixes
examples (a reduction over the batch outside BatchNorm, a reshape across it) would give wrong
answers fused, so ``StackedForward`` runs the fused and the vmapped pass once on the pack's
first batch, in training and in evaluation mode, and fuses only where they agree; otherwise,
and for every model it cannot fuse, the pack runs under vmap as before.
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call
from torch.utils._pytree import tree_flatten, tree_map

from optisweep.workers.batches import Inputs, call_args, take
from optisweep.workers.fusion.layers import fused_forward, vmapped_forward
from optisweep.workers.fusion.layouts import NotFusableError, PackShape, member_major, tile
from optisweep.workers.fusion.vmapping import vmap_members

# vmap runs fused attention member by member (no batching rule) and says so on every call; the
# fused pass is what runs attention at speed, the vmap pass is the fallback that says it.
warnings.filterwarnings("ignore", message="There is a performance drop because we have not yet")

FUSE_ENV = "OPTISWEEP_FUSE"
"""Set to 0 to train every pack under vmap (the fused path is on by default)."""

CHECK_ROWS = 16
"""Rows of the first batch the agreement check runs both passes on: enough to catch a layout
the model's own code mixes up, few enough that the check costs a small part of one step."""

_RANDOM = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)
"""Modules whose training-mode output is random: the agreement check runs them in eval mode."""


class FusedModel:
    """A fused copy of a model: ``outputs(params, buffers, inputs)`` is every member's output,
    ``[K, B, ...]``, from one pass over the folded batch."""

    def __init__(self, base: nn.Module) -> None:
        self.shape = PackShape()
        self.model = copy.deepcopy(base)
        self.fused = _patch(self.model, self.shape, root=True)
        if not self.fused:
            raise NotFusableError(f"{type(base).__name__} has no layer the fused path knows")

    def outputs(self, params: dict[str, Tensor], buffers: dict[str, Tensor], inputs: Inputs) -> Any:
        """Every member's output for the shared ``inputs``, member-major."""
        members = next(iter(params.values())).shape[0]
        args, kwargs = call_args(inputs)
        tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, Tensor)]
        if not tensors:
            raise NotFusableError("the model's inputs hold no tensor")
        self.shape.members, self.shape.rows = members, tensors[0].shape[0]
        tiled_args, tiled_kwargs = tree_map(
            lambda t: tile(t, members) if isinstance(t, Tensor) else t, (args, kwargs)
        )
        fastpath = torch.backends.mha.get_fastpath_enabled()
        torch.backends.mha.set_fastpath_enabled(False)  # its kernels take one model's weights
        try:
            out = functional_call(self.model, (params, buffers), tuple(tiled_args), tiled_kwargs)
        finally:
            torch.backends.mha.set_fastpath_enabled(fastpath)
        return tree_map(lambda t: member_major(t, self.shape) if isinstance(t, Tensor) else t, out)


def _own_state(module: nn.Module) -> bool:
    return any(True for _ in module.parameters(recurse=False)) or any(
        True for _ in module.buffers(recurse=False)
    )


def _patch(module: nn.Module, shape: PackShape, *, root: bool = False) -> int:
    """Give ``module``'s subtree fused forwards in place; how many layers were fused."""
    forward = fused_forward(module, shape)
    if forward is not None:
        module.forward = forward
        return 1
    if _own_state(module):
        if root:
            raise NotFusableError(f"{type(module).__name__} holds parameters of its own")
        module.forward = vmapped_forward(module, copy.deepcopy(module), shape)
        return 0
    return sum(_patch(child, shape) for child in module.children())


def fuse_model(base: nn.Module) -> FusedModel | None:
    """``base`` fused for packs, or None where nothing in it can be fused."""
    try:
        return FusedModel(base)
    except NotFusableError:
        return None


def fusion_enabled() -> bool:
    """Whether packs may take the fused path (``OPTISWEEP_FUSE=0`` turns it off)."""
    return os.environ.get(FUSE_ENV, "1") not in {"0", "false", "off", "no"}


class StackedForward:
    """A pack's forward pass over stacked members: fused where the model allows it and the
    fused pass agrees with vmap's on the pack's first batch, vmapped otherwise."""

    def __init__(self, base: nn.Module, *, fuse: bool | None = None) -> None:
        self.base = base
        self.fused = fuse_model(base) if (fusion_enabled() if fuse is None else fuse) else None
        self.agrees: dict[tuple[int, bool], bool] = {}
        """Whether the fused pass agreed with vmap, per pack size and mode (training or not)
        it was checked at: some layers take other code paths in evaluation."""
        self.reason: str | None = None if self.fused is not None else "no layer to fuse"
        """Why the last pack size checked does not run fused (None where it does)."""
        self._path = "vmap"

    def train(self, mode: bool = True) -> None:
        """Training or evaluation mode, for both passes."""
        self.base.train(mode)
        if self.fused is not None:
            self.fused.model.train(mode)

    @property
    def path(self) -> str:
        """How the last pass ran: "fused" or "vmap"."""
        return self._path

    def outputs(self, params: dict[str, Tensor], buffers: dict[str, Tensor], inputs: Inputs) -> Any:
        """Every member's output, ``[K, B, ...]``."""
        key = (next(iter(params.values())).shape[0], self.base.training)
        if self.fused is not None and key not in self.agrees:
            self.agrees[key] = self._agree(params, buffers, inputs)
        if self.fused is not None and self.agrees[key]:
            # Only training updates buffers in place (BatchNorm's statistics): keep them to undo
            saved = {n: b.clone() for n, b in buffers.items()} if self.base.training else {}
            try:
                out = self.fused.outputs(params, buffers, inputs)
                self._path = "fused"
                return out
            except NotFusableError as exc:  # a call unlike the checked one (a reshaped batch)
                for name, value in saved.items():
                    buffers[name].copy_(value)
                self.agrees[key], self.reason = False, str(exc)
        self._path = "vmap"
        return self.vmapped(params, buffers, inputs)

    def vmapped(self, params: dict[str, Tensor], buffers: dict[str, Tensor], inputs: Inputs) -> Any:
        """Every member's output through vmap over ``functional_call`` of the model itself."""

        def member(p: dict[str, Tensor], b: dict[str, Tensor], x: Inputs) -> Any:
            args, kwargs = call_args(x)
            return functional_call(self.base, (p, b), args, kwargs)

        return vmap_members(member, (0, 0, None), params, buffers, inputs)

    @torch.no_grad()
    def _agree(self, params: dict[str, Tensor], buffers: dict[str, Tensor], inputs: Inputs) -> bool:
        """Whether the fused pass gives vmap's outputs and running statistics on ``inputs``,
        in the current mode (Dropout off: its masks differ between the two by design)."""
        assert self.fused is not None
        training = self.base.training
        inputs = take(inputs, slice(0, CHECK_ROWS))
        try:
            with _deterministic(self.base, training), _deterministic(self.fused.model, training):
                fused_buffers = {name: b.clone() for name, b in buffers.items()}
                vmap_buffers = {name: b.clone() for name, b in buffers.items()}
                try:
                    expected = self.vmapped(params, vmap_buffers, inputs)
                except Exception:  # vmap fails too: the pack says why where it runs
                    self.reason = "vmap cannot run this model either"
                    return False
                try:
                    got = self.fused.outputs(params, fused_buffers, inputs)
                except Exception as exc:  # whatever breaks fused, vmap stays the path
                    self.reason = f"{type(exc).__name__}: {exc}"
                    return False
                if not (_close(got, expected) and _close(fused_buffers, vmap_buffers)):
                    self.reason = "the fused pass differs from vmap's on this model"
                    return False
        finally:
            self.train(training)
        self.reason = None
        return True


@contextmanager
def _deterministic(model: nn.Module, training: bool) -> Iterator[None]:
    """``model`` in ``training`` mode with its random layers (Dropout) in eval mode."""
    model.train(training)
    for module in model.modules():
        if isinstance(module, _RANDOM):
            module.eval()
    yield


def _close(got: Any, expected: Any) -> bool:
    """Whether two pytrees of tensors match in structure, shape and value (to float32's noise)."""
    got_leaves, got_spec = tree_flatten(got)
    expected_leaves, expected_spec = tree_flatten(expected)
    if got_spec != expected_spec:
        return False
    for a, b in zip(got_leaves, expected_leaves, strict=True):
        if not isinstance(a, Tensor) or not isinstance(b, Tensor):
            if a != b:
                return False
            continue
        if a.shape != b.shape:
            return False
        if a.is_floating_point():
            scale = 1.0 + float(b.abs().max()) if b.numel() else 1.0
            tolerance = (1e-9 if a.dtype == torch.float64 else 1e-3) * scale
            if a.numel() and float((a - b).abs().max()) > tolerance:
                return False
        elif not torch.equal(a, b):
            return False
    return True
