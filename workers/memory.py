"""How many pack members fit a device: one member's cost, measured, and the pack cut to fit.

A member's cost is measured rather than reckoned: a probe stack of one member and one of two
each take one training step and one evaluation chunk on the CPU while ``PeakMemory`` counts
every tensor storage the step creates and frees; the difference of the two peaks is what one
more member costs, parameters, gradients, optimizer state, the activations autograd keeps and
the evaluation's outputs all included.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import weakref
from collections.abc import Sequence
from typing import Any

import torch
from cachetools import LRUCache, cached
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from optisweep.optimizers import OPTIMIZERS, MemberConfig
from optisweep.workers.batches import chunks, data_size, epoch_batches
from optisweep.workers.evaluation import EVAL_CHUNK
from optisweep.workers.fusion import StackedForward
from optisweep.workers.stacking import evaluate_stacked, stack_members, train_stacked_epoch
from optisweep.workers.workloads import Built, parse_workload_config

DEVICE_MEMORY_FRACTION = 0.6
"""The share of a GPU's free memory a pack may plan to use. The rest is headroom for what the
CPU probe does not see: CUDA's caching allocator rounds blocks up, cuBLAS and cuDNN keep
workspaces (on an H200 a member took up to 1.35x the probe's count; benchmarks/README.md)."""


class PeakMemory(TorchDispatchMode):
    """Counts the bytes of tensor storages created under it while they live, and their peak.

    Storages that existed before it (the data, the models being stacked) are not counted.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._sizes: dict[int, int] = {}
        self._refs: dict[int, weakref.ref[torch.UntypedStorage]] = {}

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for leaf in tree_leaves(out):
            if isinstance(leaf, torch.Tensor):
                self._count(leaf.untyped_storage())
        return out

    def _count(self, storage: torch.UntypedStorage) -> None:
        key, size = storage._cdata, storage.nbytes()
        grown = size - self._sizes.get(key, 0)
        if key not in self._refs:
            self._refs[key] = weakref.ref(storage, functools.partial(self._free, key))
        if grown > 0:  # new, or resized in place
            self._sizes[key] = size
            self.live += grown
            self.peak = max(self.peak, self.live)

    def _free(self, key: int, _: object = None) -> None:
        self.live -= self._sizes.pop(key, 0)
        self._refs.pop(key, None)


PROBE_ROWS = 64
"""Evaluation rows of the smaller probe; the larger has twice as many, and memory at a full
evaluation chunk is extrapolated from the two (an evaluation's memory is linear in its rows)."""


@dataclasses.dataclass(frozen=True)
class MemberCost:
    """What one more pack member costs in memory, and why its pack does not run fused (None
    where it does: ``optisweep.workers.fusion``)."""

    bytes: int
    not_fused: str | None


def stacked_peaks(
    built: Sequence[Built],
    batch_size: int | str,
    optimizer: str,
    *,
    eval_rows: Sequence[int],
    forward: StackedForward | None = None,
) -> list[int]:
    """Peak bytes of one training step of these members as one stack on the CPU, then of one
    evaluation of each of ``eval_rows`` examples; raises where vmap cannot run the model.
    ``forward`` is the stacked pass to take (by default a new one for the model)."""
    device = torch.device("cpu")
    models = {k: b.model for k, b in enumerate(built)}
    configs = [MemberConfig(optimizer=optimizer, hyperparameters={"lr": 1e-3})] * len(built)
    if forward is None:
        forward = StackedForward(copy.deepcopy(built[0].model).to("meta"))
    batch = next(
        epoch_batches(built[0].train, seed=0, epoch=1, batch_size=batch_size, device=device)
    )
    with PeakMemory() as memory:
        stack = stack_members(models, configs, list(models), {})
        train_stacked_epoch(stack, forward, built[0], iter([batch]), device=device)
        peaks = [memory.peak]
        for rows in eval_rows:
            memory.peak = memory.live
            train = next(chunks(built[0].train, size=rows, device=device))
            val = next(chunks(built[0].val, size=rows, device=device))
            small = dataclasses.replace(built[0], train=train, val=val)
            evaluate_stacked(stack, forward, dict.fromkeys(models, small), [(k, k) for k in models])
            peaks.append(memory.peak)
    return peaks


def measured_member_bytes(
    built: Sequence[Built], batch_size: int | str, optimizers: Sequence[str]
) -> MemberCost:
    """Peak memory of a stack of two members minus that of one (``built`` holds two): one
    training step, and an evaluation chunk extrapolated from two small ones."""
    family = max(optimizers, key=lambda name: OPTIMIZERS[name].state_tensors)
    evaluated = [built[0].val] + ([built[0].train] if built[0].train_loss == "full" else [])
    full = max(1, min(EVAL_CHUNK, max(data_size(data) for data in evaluated)))
    small = min(PROBE_ROWS, full)
    forward = StackedForward(copy.deepcopy(built[0].model).to("meta"))
    peaks = []
    for members in (built[:1], built[:2]):
        train, *evals = stacked_peaks(
            members, batch_size, family, eval_rows=(small, 2 * small), forward=forward
        )
        per_row = (evals[1] - evals[0]) / small
        peaks.append(max(train, evals[0] + per_row * (full - small)))
    not_fused = None if forward.path == "fused" else (forward.reason or "not fused")
    return MemberCost(bytes=max(1, round(peaks[1] - peaks[0])), not_fused=not_fused)


def _cache_key(workload: dict[str, Any], optimizers: Sequence[str]) -> str:
    # How many epochs a trial runs changes nothing of what a step or an evaluation holds.
    shape = {name: value for name, value in workload.items() if name != "epochs"}
    return json.dumps([shape, sorted(set(optimizers))], sort_keys=True, default=str)


@cached(LRUCache(maxsize=64), key=_cache_key)
def member_memory_bytes(workload: dict[str, Any], optimizers: Sequence[str]) -> int:
    """What one more pack member of ``workload`` costs in memory, for the family among
    ``optimizers`` that keeps the most state (measured; cached per workload and families)."""
    workload_, config = parse_workload_config(workload)
    built = [workload_.build(config, seed=seed, device=torch.device("cpu")) for seed in (0, 1)]
    return measured_member_bytes(built, config.batch_size, optimizers).bytes


def split_for_memory(
    members: int,
    *,
    member_bytes: int,
    free_bytes: int,
    fraction: float = DEVICE_MEMORY_FRACTION,
) -> list[list[int]]:
    """Members 0..members-1 in consecutive groups that each fit ``fraction`` of
    ``free_bytes`` at ``member_bytes`` apiece (at least one member per group)."""
    fit = max(1, int(free_bytes * fraction) // max(1, member_bytes))
    return [list(range(start, min(start + fit, members))) for start in range(0, members, fit)]


def free_device_memory(device: torch.device) -> int | None:
    """Bytes free on ``device`` now: CUDA's own count, or None on the CPU (not planned for)."""
    if device.type != "cuda":
        return None
    free, _ = torch.cuda.mem_get_info(device)
    return int(free)
