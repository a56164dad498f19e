"""Checking a sweep's workload on a worker, under the sweep's code: the server never imports or
runs a user's code, so a short Ray task loads it, validates its fields and tries to pack it,
and answers in plain data (``WorkloadReport``) within a timeout."""

from __future__ import annotations

import ray
from ray.exceptions import GetTimeoutError, RayError, RuntimeEnvSetupError

from optisweep.service.code.store import PackageError
from optisweep.service.controller.faults import describe
from optisweep.service.controller.packing import PackingPolicy
from optisweep.service.controller.state import ControllerState
from optisweep.service.errors import SpecError
from optisweep.service.sweeps.schemas import SweepCreate
from optisweep.workers.specs import WorkloadReport
from optisweep.workers.tasks import inspect_workload


class WorkloadInspector:
    """Asks a worker what a sweep's workload is: its metrics, whether it packs, its errors."""

    def __init__(self, state: ControllerState, packing: PackingPolicy, *, timeout: float) -> None:
        self.state = state
        self.packing = packing
        self.timeout = timeout

    def __call__(self, spec: SweepCreate) -> WorkloadReport:
        """The worker's report on the sweep's workload; SpecError when it could not say (the
        code does not set up, the check timed out or crashed)."""
        try:
            options = self.state.task_options(spec)
        except PackageError as exc:
            raise SpecError(str(exc), field="code.package") from None
        # No CPU: a check must not wait behind running trials (it needs a worker of its own
        # anyway, in the sweep's runtime_env).
        remote = ray.remote(num_cpus=0, max_retries=0)(inspect_workload).options(**options)
        ref = remote.remote(spec.workload.config(), spec.space.optimizers)
        label = spec.workload.label
        try:
            report: WorkloadReport = ray.get(ref, timeout=self.timeout)
        except GetTimeoutError:
            ray.cancel(ref, force=True)
            raise SpecError(
                f"checking {label!r} on a worker took more than {self.timeout:g} s",
                field="workload.entrypoint",
            ) from None
        except RuntimeEnvSetupError as exc:
            why = str(exc).strip().splitlines()[-1][:300] if str(exc).strip() else ""
            raise SpecError(
                f"the sweep's code could not be set up on a worker: {why}", field="code"
            ) from None
        except RayError as exc:
            raise SpecError(
                f"checking {label!r} on a worker failed: {describe(exc)}",
                field="workload.entrypoint",
            ) from None
        if report.probe is not None:
            self.packing.remember(spec, report.probe)
        return report
