"""What a worker is asked to do: the typed specs the controller hands to Ray's tasks.

Plain pydantic models, light to import (the optimizer module and nothing of the training code
or of any workload): the server builds them, the worker trains from them. A spec's optimizer
side is validated here, against the shared registry; its workload config is validated where
the workload's code runs, on the worker (``PackSpec.workload_config()``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from optisweep.optimizers import (
    OPTIMIZERS,
    ConstantSchedule,
    MemberConfig,
    ParamGroup,
    ParamInfo,
    Schedule,
)
from optisweep.workers.states import TrialState

if TYPE_CHECKING:
    from optisweep.workers.workloads.base import WorkloadConfig


def parse_device(name: str) -> torch.device:
    """``name`` as a torch device; ValueError naming the field if it is not one."""
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"device: not a torch device: {name!r}") from exc


class PbtConfig(BaseModel):
    """When and how a pack exploits and explores, and the metric that ranks its members."""

    model_config = ConfigDict(extra="forbid")

    interval: int = Field(default=4, ge=1)
    quantile: float = Field(default=0.25, gt=0, le=0.5)
    perturbation: float = Field(default=0.2, gt=0, lt=1)
    metric: str
    mode: Literal["min", "max"]


class MemberSpec(MemberConfig):
    """One trial of a job: the optimizer side (family, hyperparameters, lr schedule, clipping)
    and the seed of its model's initialisation."""

    seed: int = Field(ge=0, lt=2**63)

    def member_config(self) -> MemberConfig:
        """The PopulationOptimizer's (and a checkpoint's) view of this member: no seed."""
        return MemberConfig.model_validate(self.model_dump(exclude={"seed"}))


class PackSpec(BaseModel):
    """What a worker trains: K trials of one workload config (a single trial is a pack of one).

    ``stacked`` packs train their members as one batched model (one PopulationOptimizer step
    for all); otherwise each member trains alone with its torch.optim optimizer, one after
    another. A function workload's members always run the user's loop, one after another.
    """

    model_config = ConfigDict(extra="forbid")

    workload: dict[str, Any]
    """The workload's config (``name`` or ``entrypoint``, ``epochs``, ``batch_size``, ...)."""
    members: list[MemberSpec] = Field(min_length=1)
    data_seed: int = Field(ge=0, lt=2**63)
    """Seeds the epochs' shuffles; the members (and a sweep's trials) share it, so they see
    the same batches in the same order (common random numbers)."""
    stacked: bool = True
    device: str = "auto"
    pbt: PbtConfig | None = None
    """Population-based training among the members (``optisweep.workers.pbt``), or None."""
    memory_mb: float | None = Field(default=None, gt=0)
    """On the CPU, the memory the pack may plan to use (the server's ``pack_memory_mb``): a
    larger pack trains in consecutive parts that fit. On a GPU its free memory decides."""
    member_bytes: int | None = Field(default=None, gt=0)
    """What one member costs in memory, as a worker measured when the sweep's workload was
    inspected; None: the pack measures it (``optisweep.workers.memory``) where it needs to know."""

    @field_validator("device")
    @classmethod
    def _validate_device(cls, value: str) -> str:
        if value != "auto":
            parse_device(value)
        return value

    @classmethod
    def single(
        cls,
        *,
        workload: dict[str, Any],
        optimizer: str,
        hyperparameters: dict[str, Any] | None = None,
        seed: int = 0,
        data_seed: int | None = None,
        schedule: Schedule | None = None,
        clip_norm: float | None = None,
        param_groups: Sequence[ParamGroup | dict[str, Any]] = (),
        device: str = "auto",
    ) -> PackSpec:
        """One trial trained alone with its torch.optim optimizer (a pack of one, not stacked);
        ``data_seed`` defaults to its ``seed``."""
        member = MemberSpec(
            optimizer=optimizer,
            hyperparameters=hyperparameters or {},
            seed=seed,
            schedule=schedule or ConstantSchedule(),
            clip_norm=clip_norm,
            param_groups=[ParamGroup.model_validate(g) for g in param_groups],
        )
        return cls(
            workload=workload,
            members=[member],
            data_seed=seed if data_seed is None else data_seed,
            stacked=False,
            device=device,
        )

    def workload_config(self) -> WorkloadConfig:
        """The workload config validated into the workload's own config model (defaults
        filled in); this loads the workload's code, so it runs on the worker."""
        from optisweep.workers.workloads import parse_workload_config

        return parse_workload_config(self.workload)[1]


class CheckpointPlan(BaseModel):
    """Where a task keeps a trial's checkpoint and how often it writes it."""

    model_config = ConfigDict(extra="forbid")

    path: str
    """The trial's checkpoint file: resumed from when it exists, then overwritten."""
    every: Annotated[int, Field(ge=1)] | Literal["auto"] = "auto"
    """Epochs between checkpoints, or "auto" (``optisweep.workers.pacing``)."""


class RangeTestSpec(BaseModel):
    """Which workload and families to test, over which lr range, for how many steps."""

    model_config = ConfigDict(extra="forbid")

    workload: dict[str, Any]
    optimizers: list[str] = Field(min_length=1)
    min_lr: float = Field(default=1e-7, gt=0)
    max_lr: float = Field(default=10.0, gt=0)
    steps: int = Field(default=200, ge=10, le=100_000)
    decades: float = Field(default=2.0, gt=0)
    seed: int = Field(default=0, ge=0, lt=2**63)
    device: str = "auto"

    @model_validator(mode="after")
    def _ordered(self) -> RangeTestSpec:
        if self.min_lr >= self.max_lr:
            raise ValueError(f"min_lr must be < max_lr, got {self.min_lr} and {self.max_lr}")
        for name in self.optimizers:
            if name not in OPTIMIZERS:
                raise ValueError(f"optimizers: unknown optimizer {name!r}")
        return self


@dataclass(frozen=True)
class TrialResult:
    """How a trial ended, after how many epochs, with the last epoch's metrics."""

    status: TrialState
    """COMPLETED, DIVERGED or STOPPED: how its training ended here."""
    epochs_run: int
    """The last epoch that finished, counted from 1."""
    metrics: dict[str, float] = field(default_factory=dict)
    device: str = "cpu"


@dataclass(frozen=True)
class TaskResult:
    """What a task returns: the node it ran on and each of its trials' results, in order."""

    node_id: str
    results: list[TrialResult]


@dataclass(frozen=True)
class PackProbe:
    """Whether a workload packs and what one member costs in memory, measured on a worker."""

    packable: bool
    member_bytes: int
    reason: str | None = None
    """Why it does not pack (the workload says so, or a stacked step failed), or None."""
    not_fused: str | None = None
    """Why its packs run under vmap rather than fused (``optisweep.workers.fusion``), or None."""


@dataclass(frozen=True)
class WorkloadReport:
    """What a worker found of a sweep's workload (by name or the user's entrypoint): its
    metrics and whether it packs, or the problem with it (``error``, naming ``field`` of the
    workload). Plain data: the server reads it without importing the user's code."""

    name: str = ""
    kind: Literal["model", "function", ""] = ""
    metrics: tuple[str, ...] = ()
    """Everything a trial reports each epoch: the losses and the workload's own metrics."""
    probe: PackProbe | None = None
    train_size: int | None = None
    """Examples in its training set (a model workload's), for checking batch sizes."""
    batch_size: int | str | None = None
    """Its config's batch size (the sweep's, or the workload's default)."""
    error: str | None = None
    field: str | None = None
    """The workload's field the error is about (``entrypoint``, ``name``, or its own field)."""
    params: tuple[ParamInfo, ...] = ()
    """A model workload's parameters as parameter-group rules see them (a function
    workload's model is its own: empty)."""
    numeric_fields: tuple[str, ...] = ()
    """Its config's fields that take a number: what a scale study may vary."""


class TrainingError(RuntimeError):
    """An exception raised while training (in the user's code or ours), as plain text: its
    last line and its traceback. A worker raises this instead of the original, so the server
    reads the failure without importing the module that defined the exception's class."""

    def __init__(self, summary: str, trace: str) -> None:
        super().__init__(summary)
        self.trace = trace

    def __reduce__(self) -> tuple[type[TrainingError], tuple[str, str]]:
        return TrainingError, (str(self), self.trace)

    @classmethod
    def of(cls, exc: BaseException) -> TrainingError:
        """``exc`` (being handled) as a TrainingError."""
        import traceback

        summary = traceback.format_exception_only(type(exc), exc)[-1].strip()
        return cls(summary, "".join(traceback.format_exception(exc)))
