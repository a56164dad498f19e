"""A workload's data as batches: in-memory tensors (the fast path) or a torch Dataset.

A workload's ``Built.train`` and ``Built.val`` are either ``(inputs, targets)`` tensors, where
inputs are one tensor, a tuple of tensors (the model's positional arguments) or a dict of
tensors (its keyword arguments), or a ``torch.utils.data.Dataset`` of ``(inputs, target)``
items, which a DataLoader batches and collates. Either way an epoch's order comes from
``epoch_generator(seed, epoch)``, so every member of a pack and the same trial trained alone
see the same batches; a Dataset's own randomness (augmentation drawn from torch's global RNG)
is seeded per epoch too, so it is the same for all of them and again on a retry.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, TypeAlias

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, default_collate

Inputs: TypeAlias = Tensor | tuple[Tensor, ...] | dict[str, Tensor]
"""A model's input: one tensor, positional tensors, or keyword tensors."""
Data: TypeAlias = "tuple[Inputs, Tensor] | Dataset[Any]"
"""A workload's training or validation data."""


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A CPU generator for epoch ``epoch``'s shuffle, seeded from (seed, epoch)."""
    return torch.Generator().manual_seed(epoch_seed(seed, epoch))


def epoch_seed(seed: int, epoch: int, stream: int = 0) -> int:
    """A 64-bit seed for epoch ``epoch`` of a run seeded ``seed`` (``stream`` 0: the shuffle)."""
    entropy = [seed, epoch] if stream == 0 else [seed, epoch, stream]
    state = np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0]
    return int(state)


def is_dataset(data: Any) -> bool:
    """Whether ``data`` is a Dataset (batched by a DataLoader), not in-memory tensors."""
    return isinstance(data, Dataset) and not isinstance(data, tuple)


def data_size(data: Any) -> int:
    """How many examples ``data`` holds."""
    if is_dataset(data):
        return len(data)
    return len(data[1])


def forward(model: nn.Module, inputs: Inputs) -> Tensor:
    """``model`` applied to ``inputs``: one tensor, positional tensors or keyword tensors."""
    if isinstance(inputs, Mapping):
        return model(**inputs)
    if isinstance(inputs, tuple | list):
        return model(*inputs)
    return model(inputs)


def call_args(inputs: Inputs) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``inputs`` as (args, kwargs) for ``torch.func.functional_call``."""
    if isinstance(inputs, Mapping):
        return (), dict(inputs)
    if isinstance(inputs, tuple | list):
        return tuple(inputs), {}
    return (inputs,), {}


def take(inputs: Inputs, index: Tensor | slice) -> Inputs:
    """The rows ``index`` of every tensor in ``inputs``."""
    if isinstance(inputs, Mapping):
        return {name: value[index] for name, value in inputs.items()}
    if isinstance(inputs, tuple | list):
        return tuple(value[index] for value in inputs)
    return inputs[index]


def to_device(batch: Any, device: torch.device) -> Any:
    """``batch`` (tensors, tuples, lists, dicts of them) moved to ``device``."""
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {name: to_device(value, device) for name, value in batch.items()}
    if isinstance(batch, tuple | list):
        return tuple(to_device(value, device) for value in batch)
    return batch


def batch_rows(batch_size: int | str, size: int) -> int:
    """Examples per batch: ``batch_size``, or all ``size`` of them for "full"."""
    return max(1, size) if batch_size == "full" else int(batch_size)


def epoch_batches(
    data: Any,
    *,
    seed: int,
    epoch: int,
    batch_size: int | str,
    device: torch.device,
    drop_last: bool = False,
) -> Iterator[tuple[Inputs, Tensor]]:
    """Epoch ``epoch``'s shuffled batches of ``data`` on ``device``, the order from (seed,
    epoch); with ``drop_last`` a last short batch is left out; "full": one batch of all."""
    order = torch.randperm(data_size(data), generator=epoch_generator(seed, epoch))
    batch_size = batch_rows(batch_size, len(order))
    full = len(order) >= batch_size
    stop = len(order) - len(order) % batch_size if drop_last and full else len(order)
    if not is_dataset(data):
        order = order.to(device)
        inputs, targets = data
        for start in range(0, stop, batch_size):
            batch = order[start : start + batch_size]
            yield take(inputs, batch), targets[batch]
        return
    # The Dataset's own random draws (augmentation) come from torch's global RNG: seed it.
    torch.manual_seed(epoch_seed(seed, epoch, stream=1))
    batches = [order[i : i + batch_size].tolist() for i in range(0, stop, batch_size)]
    yield from _loaded(data, batches, device)


def chunks(data: Any, *, size: int, device: torch.device) -> Iterator[tuple[Inputs, Tensor]]:
    """``data`` in order, ``size`` examples at a time, on ``device`` (for evaluation)."""
    total = data_size(data)
    if not is_dataset(data):
        inputs, targets = data
        for start in range(0, total, size):
            yield take(inputs, slice(start, start + size)), targets[start : start + size]
        return
    torch.manual_seed(0)  # an augmenting Dataset evaluates the same way every epoch
    batches = [list(range(i, min(i + size, total))) for i in range(0, total, size)]
    yield from _loaded(data, batches, device)


def _loaded(
    dataset: Any, batches: list[list[int]], device: torch.device
) -> Iterator[tuple[Inputs, Tensor]]:
    loader = DataLoader(dataset, batch_sampler=batches, collate_fn=default_collate)
    for inputs, targets in loader:
        yield to_device(inputs, device), to_device(targets, device)
