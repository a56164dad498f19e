"""The API's contract states what it sends: a diverged trial's NaN and infinite values go out as
"NaN" / "Infinity", and the OpenAPI schema of every operation that carries them says so, so a
client generated from the schema reads them."""

from __future__ import annotations

from typing import Any

import jsonschema

from tests.service.conftest import LiveAPI

DIVERGING = {
    "name": "diverging",
    "workload": {"name": "rosenbrock", "epochs": 2, "steps_per_epoch": 5},
    "space": {"optimizers": ["sgd"], "lr": {"values": [1e6, 1e-3]}},
    "search": {"algorithm": "grid"},
    "objective": {"metric": "val_loss", "mode": "min"},
}


def _validator(schema: dict[str, Any], path: str) -> jsonschema.Draft202012Validator:
    """A validator for the 200 answer of GET ``path`` in the OpenAPI ``schema``."""
    answer = schema["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
    root = {**answer["schema"], "components": schema["components"]}
    return jsonschema.Draft202012Validator(root)


def test_a_diverged_trials_values_conform_to_the_openapi_schema(live_api: LiveAPI) -> None:
    sweep = live_api.wait(live_api.submit(DIVERGING)["id"])
    trials = live_api.trials(sweep["id"])
    diverged = next(t for t in trials if t["status"] == "diverged")
    assert diverged["objective"] in ("NaN", "Infinity")  # what goes out for a diverged loss
    schema = live_api.client.get("/openapi.json").json()
    answers = {
        "/api/v1/sweeps/{sweep_id}/trials": f"/sweeps/{sweep['id']}/trials",
        "/api/v1/sweeps/{sweep_id}/metrics": f"/sweeps/{sweep['id']}/metrics",
        "/api/v1/trials/{trial_id}": f"/trials/{diverged['id']}",
        "/api/v1/trials/{trial_id}/metrics": f"/trials/{diverged['id']}/metrics",
    }
    for operation, path in answers.items():
        answer = live_api.client.get(path).json()
        errors = list(_validator(schema, operation).iter_errors(answer))
        assert not errors, (operation, [e.message for e in errors[:3]])
    assert any(
        "NaN" in str(value) or "Infinity" in str(value)
        for series in live_api.client.get(f"/trials/{diverged['id']}/metrics").json()["series"]
        for value in series["values"]
    )  # the check above saw a non-finite value, not only finite ones
