"""A user workload that fails its first attempts on purpose, to exercise retries for real.

It fails while building (before any epoch) or, with ``fail_at_epoch``, while evaluating that
epoch, after the earlier epochs were reported and checkpointed. Every evaluation leaves a file
too, so tests count the epochs each attempt really trained.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch
from pydantic import Field
from torch import Tensor

from optisweep.workers.workloads.quadratic import Quadratic
from optisweep.workloads import Built, WorkloadConfig


class FlakyConfig(WorkloadConfig):
    """Quadratic settings, plus how many builds fail before one succeeds."""

    batch_size: int = Field(default=1, ge=1, le=1)
    fail_times: int = Field(default=1, ge=0)
    fail_at_epoch: int = Field(default=0, ge=0)
    """0: the build fails. n: the build succeeds and evaluating epoch n fails."""
    attempts_dir: str
    """Each build leaves a file here, so attempts are counted across worker processes."""


class Flaky:
    """The quadratic workload, whose first ``fail_times`` attempts raise RuntimeError."""

    name = "flaky"
    packable = True
    metric_names: tuple[str, ...] = ("distance_to_optimum",)
    config_model = FlakyConfig

    def build(self, config: FlakyConfig, *, seed: int, device: torch.device) -> Built:
        """Count this attempt; raise while fewer than ``fail_times`` came before it."""
        attempts = Path(config.attempts_dir) / str(seed)
        attempts.mkdir(parents=True, exist_ok=True)
        attempt = len(list(attempts.glob("attempt-*"))) + 1
        (attempts / f"attempt-{attempt}").touch()
        failing = attempt <= config.fail_times
        if failing and not config.fail_at_epoch:
            raise RuntimeError(f"planned failure {attempt} of {config.fail_times}")
        quadratic = Quadratic()
        inner = quadratic.config_model.model_validate(
            {"name": "quadratic", "epochs": config.epochs}
        )
        built = quadratic.build(inner, seed=seed, device=device)
        evaluations = 0

        def metrics(output: Tensor, target: Tensor) -> dict[str, float]:
            nonlocal evaluations
            evaluations += 1
            (attempts / f"evaluation-{attempt}-{evaluations}").touch()
            if failing and evaluations == config.fail_at_epoch:
                raise RuntimeError(f"planned failure {attempt} of {config.fail_times}")
            return built.metrics(output, target)

        return replace(built, metrics=metrics)


FLAKY = Flaky()
