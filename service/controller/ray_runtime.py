"""Connect to Ray: a local cluster by default, an existing one when an address is configured."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ray

from optisweep.workers.warmup import warm_up

LOCAL = "local"


def ray_address(configured: str | None) -> str | None:
    """The cluster to join: OPTISWEEP_RAY_ADDRESS, else RAY_ADDRESS, else None (start locally)."""
    return configured or os.environ.get("RAY_ADDRESS") or None


def init_ray(configured: str | None, *, runtime_env: dict[str, Any] | None = None) -> bool:
    """Start or join Ray unless this process already has; True if this call initialised it.

    Joining a cluster started with ``ray start --head`` (token authentication on in Ray 2.60)
    needs RAY_AUTH_MODE=token and the cluster's token in this process's environment.
    ``runtime_env`` is this driver's (``optisweep run`` ships a user's code with it).
    """
    if ray.is_initialized():
        return False
    address = ray_address(configured)
    with _empty_working_directory():
        ray.init(
            # "local" always starts a fresh cluster; None would join what `ray start` left.
            address=address or LOCAL,
            namespace="optisweep",
            log_to_driver=False,
            include_dashboard=False if address is None else None,
            configure_logging=False,
            runtime_env=runtime_env,
        )
    _protect_auth_token()
    return True


@contextmanager
def _empty_working_directory() -> Iterator[None]:
    """Run ``ray.init`` from an empty folder: Ray puts its driver's working directory first on
    every worker's sys.path (ahead of a task's working_dir), so a server started in a folder
    with code (this repository's workers/ and service/, the image's /app) would shadow users'
    modules of those names."""
    previous = os.getcwd()
    os.chdir(tempfile.mkdtemp(prefix="optisweep-driver-"))
    try:
        yield
    finally:
        os.chdir(previous)


INBOX_MODULE = "optisweep.service.controller.inbox"
TASKS_MODULE = "optisweep.workers.tasks"
"""Where the inbox actor's class and the pack task live, by name: importing them here would
import torch before the warm-up starts (this module starts the server)."""

_warming: dict[str, list[Any]] = {}
"""The warm-up tasks submitted in this Ray session (by its job id), so they start once."""


def warm_workers() -> list[Any]:
    """Start one worker per CPU of the cluster and import the training stack there, once per
    Ray session; Ray reuses these idle workers for trials. The tasks' refs."""
    job = ray.get_runtime_context().get_job_id()
    if job not in _warming:
        cpus, _ = cluster_capacity()
        warm: Any = ray.remote(num_cpus=1, max_retries=0)(warm_up)  # stubs: no default args
        # what a pack's task loads on a fresh worker besides the training stack: the inbox
        # actor's class (Ray imports it to unpickle the handle every pack gets, 0.35 s of a
        # first pack here) and the task's own module
        modules = [INBOX_MODULE, TASKS_MODULE]
        _warming[job] = [warm.remote(modules) for _ in range(int(cpus))]
    return _warming[job]


def _protect_auth_token() -> None:
    """Make Ray's token file owner-only: Ray 2.60 writes ~/.ray/auth_token, which grants the
    cluster's code execution, with the umask's mode (0644: readable by every local user)."""
    token = Path.home() / ".ray" / "auth_token"
    if token.is_file():
        token.chmod(0o600)


def cluster_capacity() -> tuple[float, float]:
    """The cluster's total CPUs and GPUs right now (nodes may join or leave)."""
    resources = ray.cluster_resources()
    return float(resources.get("CPU", 0.0)), float(resources.get("GPU", 0.0))


def largest_node() -> tuple[float, float]:
    """The most CPUs and GPUs any one alive node of the cluster offers."""
    cpus = gpus = 0.0
    for node in ray.nodes():
        if node.get("Alive"):
            resources = node.get("Resources", {})
            cpus = max(cpus, float(resources.get("CPU", 0.0)))
            gpus = max(gpus, float(resources.get("GPU", 0.0)))
    return cpus, gpus
