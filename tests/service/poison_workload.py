"""A user workload that breaks the controller's handling of its sweep, not a worker.

Asking the controller's thread whether it can be packed raises, which the controller does when
it submits the sweep's trials: the fault of one sweep, that must not halt the others. (Other
threads get an answer: Python 3.11's isinstance check against the Workload protocol reads the
attribute when the API validates the spec.)
"""

from __future__ import annotations

import threading

import torch

from optisweep.workloads import Built, WorkloadConfig


class Poison:
    """Validates like any workload; raises when the controller asks whether it packs."""

    name = "poison"
    metric_names: tuple[str, ...] = ()
    config_model = WorkloadConfig

    @property
    def packable(self) -> bool:
        """Raises in the controller's thread: the fault under test."""
        if threading.current_thread().name == "optisweep-controller":
            raise RuntimeError("poisoned: this workload cannot say whether it packs")
        return True

    def build(self, config: WorkloadConfig, *, seed: int, device: torch.device) -> Built:
        """Never reached: no trial of this workload is submitted."""
        raise AssertionError("a poison trial was submitted")


POISON = Poison()
