"""When a trial (or a pack) writes its next checkpoint.

``checkpoint_every`` is a number of epochs, or "auto": after an epoch when the time since the
last checkpoint is at least 19 times what writing that one took, so checkpoints cost at most
about 5% of the run (the first epoch always writes one, which measures the cost). Long epochs
then checkpoint every epoch, and a short sweep writes a few instead of one per epoch. The last
epoch always writes one.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

CheckpointEvery = int | Literal["auto"]
"""Epochs between checkpoints (0: never), or "auto"."""

AUTO_SHARE = 0.05
"""The share of a run's wall time "auto" lets checkpoints take."""


class CheckpointPacer:
    """Says which epochs checkpoint, and times the writes it is told of."""

    def __init__(self, every: CheckpointEvery, *, last_epoch: int) -> None:
        self.every = every
        self.last_epoch = last_epoch
        self._cost = 0.0
        self._since = time.perf_counter()

    def due(self, epoch: int) -> bool:
        """Whether ``epoch`` (just trained) writes a checkpoint."""
        if self.every == 0:
            return False
        if epoch == self.last_epoch:
            return True
        if self.every == "auto":
            return time.perf_counter() - self._since >= self._cost * (1 - AUTO_SHARE) / AUTO_SHARE
        return epoch % self.every == 0

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Around an epoch's checkpoint writes: their time is the next interval's yardstick."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self._since = time.perf_counter()
            self._cost = self._since - start
