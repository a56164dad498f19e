"""The packing policy: how many trials one task trains.

Pending trials spread over the cluster's slots, capped by ``max_pack_size``; a worker splits a
pack that does not fit its memory (``pack_memory_mb`` on a CPU, what is free on a GPU) into
parts it trains one after another. Whether a user's workload packs is measured by a worker
(when the sweep is submitted, or by a small probe task once per workload config, families and
code), which also says what a member costs; the server never builds a workload itself. A
built-in workload says itself that it packs, so its first packs wait for no probe.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from typing import Any

import ray
from ray.exceptions import RayError

from optisweep.service.sweeps.schemas import SweepCreate
from optisweep.service.sweeps.search_spec import ADAPTIVE, PbtSpec
from optisweep.workers.specs import PackProbe, WorkloadReport
from optisweep.workers.tasks import inspect_workload
from optisweep.workers.workloads import WORKLOADS

logger = logging.getLogger(__name__)


class PackingPolicy:
    """Pack sizes per sweep, from the cluster's slots and what workers measured."""

    def __init__(
        self,
        *,
        pack_memory_mb: float,
        task_options: Callable[[SweepCreate], dict[str, Any]] | None = None,
    ) -> None:
        self.pack_memory_mb = pack_memory_mb
        self.task_options = task_options or (lambda spec: {})
        """Ray options for a sweep's tasks (its code's runtime_env)."""
        self.probes: dict[str, PackProbe] = {}
        """What workers measured, by workload config, families and code."""
        self.fixed: dict[int, int] = {}
        """Grid and random sweeps' pack sizes, fixed at their first dispatch (sweep id ->
        size): which trials share a pack then follows from the spec, not from how busy the
        cluster was, so the same sweep gives the same packs and the same numbers."""
        self._probing: dict[str, ray.ObjectRef[Any]] = {}

    @staticmethod
    def key(spec: SweepCreate) -> str:
        """What a probe depends on: the workload config, the families and the code."""
        code = spec.code.model_dump() if spec.code is not None else None
        return json.dumps(
            [spec.workload.config(), sorted(spec.space.optimizers), code], sort_keys=True
        )

    def remember(self, spec: SweepCreate, probe: PackProbe) -> None:
        """Keep what a worker found when the sweep was checked, so it is not probed again."""
        self.probes[self.key(spec)] = probe

    def _probe(self, spec: SweepCreate) -> PackProbe | None:
        """What a worker measured for this sweep's workload; None while the probe runs."""
        key = self.key(spec)
        if key in self.probes:
            return self.probes[key]
        if key not in self._probing:
            # One CPU: it reuses a warm worker (a 0-CPU task would start a cold one while the
            # warm-up tasks hold the CPUs, and wait for its imports).
            remote = ray.remote(num_cpus=1, max_retries=1)(inspect_workload)
            options = self.task_options(spec)
            self._probing[key] = remote.options(**options).remote(
                spec.workload.config(), spec.space.optimizers
            )
        ready, _ = ray.wait([self._probing[key]], timeout=0)
        if not ready:
            return None
        try:
            report: WorkloadReport = ray.get(self._probing.pop(key))
            why = report.error or "no answer"
            self.probes[key] = report.probe or PackProbe(False, 0, reason=why)
        except RayError as exc:
            # The workload fails to build: its trials will say why, one task each.
            logger.exception("could not measure a pack member of %s", spec.workload.label)
            self.probes[key] = PackProbe(False, 0, reason=str(exc).splitlines()[0][:200])
        return self.probes[key]

    def pack_size(
        self,
        spec: SweepCreate,
        pending: int,
        *,
        total_cpus: float,
        total_gpus: float,
        sweep_id: int | None = None,
    ) -> int | None:
        """How many trials one task trains, or None until a worker has inspected the user's
        workload.

        One per task when packing is off or the workload cannot be packed; otherwise pending
        trials divided by the trials the cluster runs at once, capped by ``max_pack_size``.
        """
        if sweep_id is not None and sweep_id in self.fixed:
            return self.fixed[sweep_id]
        size = self._pack_size(spec, pending, total_cpus=total_cpus, total_gpus=total_gpus)
        if size is not None and sweep_id is not None and spec.search.algorithm not in ADAPTIVE:
            self.fixed[sweep_id] = size  # all its trials are pending at its first dispatch
        return size

    def member_bytes(self, spec: SweepCreate) -> int | None:
        """What a worker measured one pack member of this sweep to cost, if one has (a
        built-in workload's packs measure it themselves, once per worker process)."""
        probe = self.probes.get(self.key(spec))
        return probe.member_bytes if probe is not None and probe.member_bytes else None

    def _pack_size(
        self, spec: SweepCreate, pending: int, *, total_cpus: float, total_gpus: float
    ) -> int | None:
        resources = spec.resources
        if not resources.pack:
            return 1
        if spec.workload.name in WORKLOADS:  # built in: its registry entry says if it packs
            if not WORKLOADS[spec.workload.name].packable:
                return 1
        else:  # a user's code (by entrypoint or an installed plugin): a worker says
            probe = self._probe(spec)
            if probe is None:
                return None
            if not probe.packable:
                return 1
        slots = total_cpus / resources.cpus_per_trial
        if resources.gpus_per_trial > 0:
            slots = min(slots, total_gpus / resources.gpus_per_trial)
        if isinstance(spec.search.scheduler, PbtSpec):
            slots = 1  # PBT's population is a pack: keep the sweep's trials together
        return max(1, min(math.ceil(pending / max(1, math.floor(slots))), resources.max_pack_size))
