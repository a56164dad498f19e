"""A scale study's spec (``scale``): one sweep over sizes of the workload (a width, a depth, a
batch size), every configuration trained at each, so the best learning rate can be read at
each size and a rule fitted across them."""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import Field, model_validator

from optisweep.service.sweeps.params import Name, StrictModel

MAX_SIZES = 16
"""The most sizes one scale study trains at."""


class ScaleSpec(StrictModel):
    """Train every configuration at each of ``values`` of the workload's numeric config field
    ``field``; the report fits log lr* = a + b log size per family and predicts the lr at
    ``predict``."""

    field: Name
    """A numeric field of the workload's config: ``hidden`` (mlp-digits), ``d_model``
    (char-lm), ``batch_size``, or a field of your own workload's config."""
    values: list[Annotated[float, Field(gt=0, allow_inf_nan=False)]] = Field(
        min_length=3, max_length=MAX_SIZES
    )
    """The sizes, at least 3 (a line through 2 points has no interval)."""
    predict: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    """A size to predict each family's best lr at (one not trained: 8x the width)."""

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        if len(set(self.values)) != len(self.values):
            raise ValueError(f"scale.values: each size once, got {self.values}")
        return self

    @property
    def setting(self) -> str:
        """The trial setting that holds a trial's size: ``batch_size`` (the setting packs
        group by), else ``workload.<field>``."""
        return "batch_size" if self.field == "batch_size" else f"workload.{self.field}"

    def sizes(self) -> list[int | float]:
        """The sizes as the workload's config takes them (integral ones as ints)."""
        return [int(v) if float(v).is_integer() else v for v in self.values]
