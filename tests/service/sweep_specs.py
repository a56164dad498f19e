"""Sweep specs shared by the API tests."""

from __future__ import annotations

from typing import Any

EPOCHS = 4


def grid_spec(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "rosenbrock-grid",
        "workload": {"name": "rosenbrock", "epochs": EPOCHS, "steps_per_epoch": 10},
        "space": {
            "optimizers": ["sgd", "momentum", "adam"],
            "lr": {"values": [1e-4, 1e-3, 0.5]},
            "beta1": {"values": [0.9]},
        },
        "search": {"algorithm": "grid"},
        "objective": {"metric": "val_loss", "mode": "min"},
    }
    spec.update(changes)
    return spec
