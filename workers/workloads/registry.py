"""The workload registry: built-ins by stable name, plugins from the optisweep.workloads group."""

from __future__ import annotations

import importlib
import inspect
import traceback
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

from pydantic import ValidationError

from optisweep.optimizers.schemas import short_repr
from optisweep.workers.workloads.base import (
    TIME_METRIC,
    Workload,
    WorkloadConfig,
    WorkloadConfigError,
    config_error,
)
from optisweep.workers.workloads.char_lm import CharLM
from optisweep.workers.workloads.cnn_bn_digits import CNNBNDigits
from optisweep.workers.workloads.cnn_digits import CNNDigits
from optisweep.workers.workloads.logreg_digits import LogRegDigits
from optisweep.workers.workloads.mlp_digits import MLPDigits
from optisweep.workers.workloads.quadratic import Quadratic
from optisweep.workers.workloads.rosenbrock import Rosenbrock

ENTRY_POINT_GROUP = "optisweep.workloads"

WORKLOADS: dict[str, Workload[Any]] = {
    "mlp-digits": MLPDigits(),
    "logreg-digits": LogRegDigits(),
    "cnn-digits": CNNDigits(),
    "cnn-bn-digits": CNNBNDigits(),
    "char-lm": CharLM(),
    "rosenbrock": Rosenbrock(),
    "quadratic": Quadratic(),
}


def _load_plugin(name: str) -> Workload[Any] | None:
    matches = entry_points(group=ENTRY_POINT_GROUP, name=name)
    if not matches:
        return None
    entry_point = next(iter(matches))
    workload = entry_point.load()
    if not isinstance(workload, Workload):
        raise TypeError(
            f"entry point {name!r} ({entry_point.value}) in group {ENTRY_POINT_GROUP!r} "
            f"must resolve to a Workload instance, got {type(workload).__name__}"
        )
    if workload.name != name:
        raise ValueError(
            f"entry point {name!r} in group {ENTRY_POINT_GROUP!r} "
            f"resolves to a workload named {workload.name!r}"
        )
    return workload


def workload_names() -> list[str]:
    """Every workload name: built-ins, then installed plugins, each list sorted."""
    plugins = {entry_point.name for entry_point in entry_points(group=ENTRY_POINT_GROUP)}
    return sorted(WORKLOADS) + sorted(plugins - WORKLOADS.keys())


def get_workload(name: str) -> Workload[Any]:
    """The built-in or plugin workload called ``name``; raises ValueError listing valid names."""
    if name in WORKLOADS:
        return WORKLOADS[name]
    workload = _load_plugin(name)
    if workload is None:
        valid = ", ".join(workload_names())
        raise ValueError(f"unknown workload {short_repr(name)} (valid: {valid})")
    return workload


def reported_metrics(workload: Workload[Any]) -> tuple[str, ...]:
    """Every metric a trial of ``workload`` reports each epoch: the losses, its own, and the
    time it has trained (time_seconds, which every loop measures)."""
    own = tuple(name for name in workload.metric_names if name != TIME_METRIC)
    return ("train_loss", "val_loss", *own, TIME_METRIC)


def load_workloads() -> dict[str, Workload[Any]]:
    """Built-ins and every installed plugin, loaded; a built-in wins over a plugin of its name."""
    return {name: get_workload(name) for name in workload_names()}


def load_entrypoint(entrypoint: str) -> Workload[Any]:
    """The workload object at ``module:attribute`` (the user's code, imported here: on a
    worker); WorkloadConfigError naming ``entrypoint`` with the import's last line if not."""

    def refused(why: str) -> WorkloadConfigError:
        return WorkloadConfigError(
            f"entrypoint {short_repr(entrypoint)}: {why}", workload=None, field="entrypoint"
        )

    module_name, _, attribute = entrypoint.partition(":")
    if not module_name or not attribute:
        raise refused("expected module.path:attribute")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # anything the user's module raises while importing
        lines = traceback.format_exception_only(type(exc), exc)
        raise refused(f"does not import ({lines[-1].strip()})") from None
    try:
        workload = getattr(module, attribute)
    except AttributeError:
        raise refused(f"module {module_name!r} has no attribute {attribute!r}") from None
    if not is_workload(workload):
        raise refused(
            f"{type(workload).__name__} is neither a model workload (name, packable, "
            "metric_names, config_model, build) nor a function workload (@function_workload)"
        )
    return workload


def is_workload(candidate: Any) -> bool:
    """Whether ``candidate`` has what optisweep needs of a workload (its attributes are read
    statically: a property is not run)."""
    needed = ("name", "packable", "metric_names", "config_model", "build")
    return all(inspect.getattr_static(candidate, name, None) is not None for name in needed)


def _refused(message: str, *, field: str) -> WorkloadConfigError:
    return WorkloadConfigError(f"workload: {message}", workload=None, field=field)


def parse_workload_config(data: Mapping[str, Any]) -> tuple[Workload[Any], WorkloadConfig]:
    """The workload ``data`` names (``name``: built-in or installed plugin; ``entrypoint``:
    the user's code) and ``data`` validated into its config model."""
    entrypoint = data.get("entrypoint")
    if entrypoint is not None:
        if "name" in data:
            raise _refused(
                "give name (a built-in or installed workload) or entrypoint (your code), not both",
                field="entrypoint",
            )
        if not isinstance(entrypoint, str):
            raise _refused(
                f"entrypoint must be module:attribute, got {short_repr(entrypoint)}",
                field="entrypoint",
            )
        workload = load_entrypoint(entrypoint)
        data = {**{k: v for k, v in data.items() if k != "entrypoint"}, "name": workload.name}
    else:
        name = data.get("name")
        if not isinstance(name, str):
            raise _refused(f"name must be a workload name, got {short_repr(name)}", field="name")
        workload = get_workload(name)
    name = workload.name
    try:
        config = workload.config_model.model_validate(dict(data))
    except ValidationError as exc:
        raise config_error(name, workload.config_model, exc) from None
    return workload, config
