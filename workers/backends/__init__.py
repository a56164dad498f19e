"""The back-ends of the epoch lifecycle (``optisweep.workers.train``): what trains a pack's
members and evaluates them. ``stacked``: the members as one batched model; ``alone``: one model
with its torch.optim optimizer; ``function``: the user's own loop."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from optisweep.workers.checkpoint import Checkpoint
    from optisweep.workers.specs import PackSpec
    from optisweep.workers.train import EpochLifecycle, PackRun


@dataclass(frozen=True)
class Trained:
    """One member's epoch of training: its train_loss and whether every batch's loss was
    finite."""

    train_loss: float
    finite: bool


class Backend(Protocol):
    """What the end of an epoch needs of a back-end."""

    def exploit(
        self, epoch: int, metrics: dict[int, dict[str, float]], finite: dict[int, bool]
    ) -> None:
        """PBT's exploit and explore step among the members (stacked packs only)."""

    def checkpoint(self, k: int, epoch: int, history: dict[int, dict[str, float]]) -> Checkpoint:
        """Member ``k`` after ``epoch``, as a checkpoint of its own."""

    def leave(self, members: set[int]) -> None:
        """These members ended (diverged or stopped): they train no more."""


class EpochBackend(Backend, Protocol):
    """A back-end the lifecycle drives epoch by epoch (every one but the user's own loop)."""

    @property
    def training(self) -> list[int]:
        """The members training now."""

    def join(self, members: list[int]) -> None:
        """These members train from the next epoch on (from scratch or their checkpoint)."""

    def train_epoch(self, epoch: int, members: list[int]) -> dict[int, Trained]:
        """One pass over the epoch's batches for ``members``."""

    def evaluate(self, members: list[int]) -> dict[int, dict[str, float]]:
        """Each member's validation metrics (and train_loss where the workload measures it
        over the whole training set)."""


TrainPart = Callable[["PackRun", "EpochLifecycle"], None]


def backend_for(spec: PackSpec, workload: Any) -> TrainPart:
    """How this pack's parts train: the user's loop, stacked, or each member alone."""
    from optisweep.workers.workloads.functional import FunctionWorkload

    if isinstance(workload, FunctionWorkload):
        from optisweep.workers.backends.function import train_part

        return train_part
    if spec.stacked:
        if not workload.packable:
            raise ValueError(f"workload {workload.name!r} cannot be packed")
        from optisweep.workers.backends.stacked import train_part as train_stacked

        return train_stacked
    from optisweep.workers.backends.alone import train_part as train_alone

    return train_alone
