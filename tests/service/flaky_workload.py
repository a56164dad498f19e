"""A user workload that fails its first attempts on purpose, to exercise retries for real."""

from __future__ import annotations

from pathlib import Path

import torch
from pydantic import Field

from workers.workloads import Built, WorkloadConfig
from workers.workloads.quadratic import Quadratic


class FlakyConfig(WorkloadConfig):
    """Quadratic settings, plus how many builds fail before one succeeds."""

    batch_size: int = Field(default=1, ge=1, le=1)
    fail_times: int = Field(default=1, ge=0)
    attempts_dir: str
    """Each build leaves a file here, so attempts are counted across worker processes."""


class Flaky:
    """The quadratic workload, whose first ``fail_times`` builds raise RuntimeError."""

    name = "flaky"
    packable = False
    metric_names: tuple[str, ...] = ("distance_to_optimum",)
    config_model = FlakyConfig

    def build(self, config: FlakyConfig, *, seed: int, device: torch.device) -> Built:
        """Count this attempt; raise while fewer than ``fail_times`` came before it."""
        attempts = Path(config.attempts_dir) / str(seed)
        attempts.mkdir(parents=True, exist_ok=True)
        earlier = len(list(attempts.iterdir()))
        (attempts / f"attempt-{earlier + 1}").touch()
        if earlier < config.fail_times:
            raise RuntimeError(f"planned failure {earlier + 1} of {config.fail_times}")
        quadratic = Quadratic()
        inner = quadratic.config_model.model_validate(
            {"name": "quadratic", "epochs": config.epochs}
        )
        return quadratic.build(inner, seed=seed, device=device)


FLAKY = Flaky()
