"""What a sweep trains: the workload (built-in, installed, or the user's entrypoint) and the
user's code that ships with it."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from optisweep.optimizers.schemas import short_repr
from optisweep.service.sweeps.params import Name, StrictModel

MAX_WORKLOAD_FIELDS = 64
"""The most extra fields a workload spec carries."""

ENTRYPOINT = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"
"""``module.path:attribute``."""


class WorkloadSpec(BaseModel):
    """Which workload to train and how long; the workload validates its own extra fields."""

    model_config = ConfigDict(extra="allow")

    name: Name | None = None
    """A built-in or installed workload (``optisweep workloads`` lists them)."""
    entrypoint: str | None = Field(default=None, max_length=200, pattern=ENTRYPOINT)
    """The user's own workload, ``module.path:attribute`` in the sweep's code (or installed on
    the workers): a model workload or a ``@function_workload``."""
    epochs: int = Field(ge=1, le=10_000)
    batch_size: Annotated[int, Field(ge=1, le=65_536)] | Literal["full"] | None = None
    """None: the workload's own default (64 for the digits workloads); "full": the whole
    training set per step (gradient descent)."""

    def config(self) -> dict[str, Any]:
        """The workload config a worker builds from (unset fields take the workload's defaults)."""
        return self.model_dump(exclude_none=True)

    @field_validator("entrypoint")
    @classmethod
    def _not_both(cls, entrypoint: str | None, info: ValidationInfo) -> str | None:
        if entrypoint is not None and info.data.get("name") is not None:
            raise ValueError(
                "give name (a built-in or installed workload) or entrypoint (your code), not both"
            )
        return entrypoint

    @model_validator(mode="after")
    def _few_extra_fields(self) -> Self:
        extra = self.model_extra or {}
        if len(extra) > MAX_WORKLOAD_FIELDS:
            raise ValueError(f"at most {MAX_WORKLOAD_FIELDS} workload fields, got {len(extra)}")
        if self.name is None and self.entrypoint is None:
            raise ValueError(
                "give name (a built-in or installed workload) or entrypoint "
                "(module.path:attribute in your code)"
            )
        return self

    @property
    def label(self) -> str:
        """How to name this workload to a person: its name or its entrypoint."""
        return self.name or self.entrypoint or ""


PipRequirement = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9]")]
"""A pip requirement (``torchvision>=0.20``); options such as ``--index-url`` are refused."""


class CodeSpec(StrictModel):
    """The user's code a sweep runs on the workers (Ray's runtime_env): an uploaded package
    (``POST /api/v1/code``) as the working directory, and pip packages to install."""

    package: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    """The package's id (the sha256 the upload answered)."""
    path: str | None = Field(default=None, max_length=4096)
    """A directory, for the CLI: ``optisweep submit`` zips and uploads it (giving
    ``package``), ``optisweep run`` hands it to Ray. The API itself takes ``package``."""
    pip: list[PipRequirement] = Field(default_factory=list, max_length=100)

    @field_validator("pip")
    @classmethod
    def _no_pip_options(cls, requirements: list[str]) -> list[str]:
        # Ray writes these into a requirements file: an option there (``--index-url``,
        # ``-e``) would change where every package of the sweep comes from.
        for requirement in requirements:
            if re.search(r"(^|\s)-", requirement) or "\n" in requirement:
                raise ValueError(
                    f"{short_repr(requirement)}: a requirement, not a pip option "
                    "(e.g. torchvision>=0.20)"
                )
        return requirements
