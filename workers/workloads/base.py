"""The workload protocol: a config model, and a build step giving model, data, loss and metrics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Protocol, TypeVar, runtime_checkable

import torch
from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationError
from torch import Tensor, nn

from optisweep.optimizers.schemas import field_path, short_repr
from optisweep.workers.batches import Data


def _batch_size(value: Any) -> int | str:
    """A batch size: an int in [1, 65536], or "full" (the whole training set)."""
    if value == "full":
        return "full"
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65_536:
        raise ValueError(f"must be an int in [1, 65536] or 'full', got {short_repr(value)}")
    return value


BatchSize = Annotated[int | Literal["full"], PlainValidator(_batch_size)]
"""Examples per optimizer step; "full": the whole training set (gradient descent)."""


TIME_METRIC = "time_seconds"
"""The metric every trial reports with every epoch: the wall-clock seconds it has trained
(training and evaluation, not queueing or start-up) through that epoch, over all its
attempts; a packed trial is charged each pack epoch's time divided by the members that trained
in it."""


class WorkloadConfig(BaseModel):
    """Settings every workload shares; a workload subclasses it to add its own fields."""

    model_config = ConfigDict(extra="forbid")

    name: str
    epochs: int = Field(default=10, ge=1, le=10_000)
    batch_size: BatchSize = 64
    """Examples per optimizer step; "full": the whole training set (gradient descent)."""


SHARED_FIELDS = frozenset({"name", "epochs"})
"""Config fields every workload has that are not a size of its model or data."""


def numeric_fields(config_model: type[WorkloadConfig]) -> tuple[str, ...]:
    """The config's fields that take a number (int or float), by name: what a scale study
    (``scale.field``) may vary; ``batch_size`` among them."""
    found = []
    for name, info in config_model.model_fields.items():
        if name in SHARED_FIELDS:
            continue
        annotation = info.annotation
        args = set(getattr(annotation, "__args__", ())) or {annotation}
        if args & {int, float} and bool not in args:
            found.append(name)
    return tuple(found)


class WorkloadConfigError(ValueError):
    """A workload config that is not valid; the message names the workload, field and value."""

    def __init__(self, message: str, *, workload: str | None, field: str | None) -> None:
        super().__init__(message)
        self.workload = workload
        self.field = field


@dataclass(frozen=True)
class Built:
    """One trial's workload on its device: the model, its data, its loss and its extra metrics."""

    model: nn.Module
    train: Data
    """Training data: ``(inputs, targets)`` tensors on the device, where inputs are a tensor, a
    tuple of tensors (the model's positional arguments) or a dict of tensors (its keyword
    arguments); or a ``torch.utils.data.Dataset`` of ``(inputs, target)`` items, which the loop
    batches (seeded order per epoch) and moves to the device. The loop shuffles either."""
    val: Data
    """Validation data, in the same forms."""
    loss_fn: Callable[[Tensor, Tensor], Tensor]
    """Mean loss over a batch: ``loss_fn(model(inputs), targets)``."""
    metrics: Callable[[Tensor, Tensor], dict[str, float]]
    """Metrics beyond the losses, from the model's validation output and targets."""
    train_loss: Literal["batches", "full"] = "batches"
    """How an epoch's ``train_loss`` is measured: "batches", the epoch's batch losses averaged
    over its examples (free: training computed them; what Keras and Lightning report), or
    "full", one more pass over the whole training set after the epoch, in eval mode (exact,
    and as costly as a validation pass; the test functions use it)."""


ConfigT = TypeVar("ConfigT", bound=WorkloadConfig)


@runtime_checkable
class Workload(Protocol[ConfigT]):
    """Data, model and metrics behind one name; plugins provide instances of this protocol."""

    name: str
    packable: bool
    """Whether K trials of this workload can be trained as one batched (stacked) model."""
    metric_names: tuple[str, ...]
    """The metrics ``Built.metrics`` reports, besides train_loss, val_loss and time_seconds."""
    config_model: type[ConfigT]

    def build(self, config: ConfigT, *, seed: int, device: torch.device) -> Built:
        """The model (initialised from torch's seeded RNG and ``seed``) and data on ``device``."""
        ...


def config_error(
    workload: str, model: type[BaseModel], exc: ValidationError
) -> WorkloadConfigError:
    """A WorkloadConfigError naming each invalid field of ``exc`` and the value it got."""
    messages = []
    first_field: str | None = None
    for error in exc.errors():
        field = field_path(tuple(error["loc"]))
        first_field = first_field or field or None
        if error["type"] == "extra_forbidden":
            valid = ", ".join(model.model_fields)
            messages.append(f"unknown field {short_repr(field)} (valid: {valid})")
            continue
        message = str(error["msg"]).removeprefix("Value error, ")
        got: Any = error.get("input")
        messages.append(f"{field}: {message}, got {short_repr(got)}" if field else message)
    return WorkloadConfigError(
        f"{workload}: " + "; ".join(messages), workload=workload, field=first_field
    )
