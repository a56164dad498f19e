"""Bad input through the REST API: 422s naming the field with nothing written, 404s,
health, readiness and the OpenAPI document."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import func, select

from optisweep.service.sweeps.models import Sweep
from optisweep.service.trials.models import Trial
from tests.conftest import wait_until
from tests.service.conftest import LiveAPI
from tests.service.sweep_specs import grid_spec

BAD_SPECS: list[tuple[str, dict[str, Any], tuple[str, ...], str]] = [
    (
        "unknown optimizer",
        {"space": {"optimizers": ["adamz"], "lr": {"values": [0.1]}}},
        ("space", "optimizers"),
        "valid: adadelta, adafactor, adagrad, adam",
    ),
    (
        "unknown workload",
        {"workload": {"name": "mnist", "epochs": 2}},
        ("workload", "name"),
        "mlp-digits",
    ),
    (
        "lr zero",
        {"space": {"optimizers": ["sgd"], "lr": {"values": [0.0]}}},
        ("space", "lr"),
        "lr must be finite and > 0",
    ),
    (
        "lr negative range",
        {"space": {"optimizers": ["sgd"], "lr": {"low": -1.0, "high": 0.1}}},
        ("space", "lr"),
        "> 0",
    ),
    (
        "lr infinite",
        {"space": {"optimizers": ["sgd"], "lr": {"low": 0.1, "high": "Infinity"}}},
        ("space", "lr"),
        "finite",
    ),
    (
        "beta1 is 1",
        {"space": {"optimizers": ["adam"], "lr": {"values": [0.1]}, "beta1": {"values": [1.0]}}},
        ("space", "beta1"),
        "[0, 1)",
    ),
    (
        "beta2 negative",
        {
            "space": {
                "optimizers": ["adam"],
                "lr": {"values": [0.1]},
                "beta2": {"low": -0.1, "high": 0.9},
            }
        },
        ("space", "beta2"),
        "[0, 1)",
    ),
    (
        "low above high",
        {"space": {"optimizers": ["sgd"], "lr": {"low": 0.1, "high": 0.01}}},
        ("space", "lr"),
        "low must be <= high",
    ),
    (
        "log with low 0",
        {"space": {"optimizers": ["sgd"], "lr": {"low": 0.0, "high": 0.1, "log": True}}},
        ("space", "lr"),
        "> 0",
    ),
    (
        "grid too large",
        {
            "space": {
                "optimizers": ["adam"],
                "lr": {"values": [i / 1000 + 0.001 for i in range(101)]},
                "beta1": {"values": [i / 1000 for i in range(100)]},
            }
        },
        ("space",),
        "more than the maximum of 10000",
    ),
    (
        "epochs zero",
        {"workload": {"name": "rosenbrock", "epochs": 0}},
        ("workload", "epochs"),
        "greater than or equal to 1",
    ),
    (
        "epochs too many",
        {"workload": {"name": "rosenbrock", "epochs": 10_001}},
        ("workload", "epochs"),
        "less than or equal to 10000",
    ),
    (
        "batch size zero",
        {"workload": {"name": "mlp-digits", "epochs": 2, "batch_size": 0}},
        ("workload", "batch_size"),
        "greater than or equal to 1",
    ),
    (
        "batch size too big for workload",
        {"workload": {"name": "rosenbrock", "epochs": 2, "batch_size": 64}},
        ("workload", "batch_size"),
        "rosenbrock",
    ),
    (
        "workload field unknown",
        {"workload": {"name": "mlp-digits", "epochs": 2, "hiden": 3}},
        ("workload", "hiden"),
        "unknown field",
    ),
    (
        "objective not reported",
        {"objective": {"metric": "val_accuracy", "mode": "max"}},
        ("objective", "metric"),
        "reports: train_loss",
    ),
    (
        "override of unknown field",
        {
            "space": {
                "optimizers": ["sgd"],
                "lr": {"values": [0.1]},
                "overrides": {"sgd": {"momentum": 0.9}},
            }
        },
        ("space", "overrides"),
        "unknown hyperparameter",
    ),
    (
        "random without count",
        {"search": {"algorithm": "random"}},
        ("search",),
        "num_trials is required",
    ),
]


@pytest.mark.parametrize(
    ("change", "loc", "message"),
    [case[1:] for case in BAD_SPECS],
    ids=[case[0] for case in BAD_SPECS],
)
def test_bad_input_is_422_naming_the_field_and_writes_nothing(
    live_api: LiveAPI, change: dict[str, Any], loc: tuple[str, ...], message: str
) -> None:
    spec = grid_spec(**change)
    with live_api.sessions() as session:
        before = (
            session.scalar(select(func.count()).select_from(Sweep)),
            session.scalar(select(func.count()).select_from(Trial)),
        )
    response = live_api.client.post(
        "/sweeps", content=json.dumps(spec), headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    details = response.json()["detail"]
    matching = [d for d in details if tuple(d["loc"][1 : 1 + len(loc)]) == loc]
    assert matching, details
    assert any(message in d["msg"] for d in matching), details
    assert "Traceback" not in response.text
    with live_api.sessions() as session:
        after = (
            session.scalar(select(func.count()).select_from(Sweep)),
            session.scalar(select(func.count()).select_from(Trial)),
        )
    assert after == before


@pytest.mark.parametrize(
    ("path", "params", "loc"),
    [
        ("/sweeps", {"cursor": "not-a-cursor"}, ["query", "cursor"]),
        ("/sweeps", {"status": "done"}, ["query", "status"]),
        ("/sweeps", {"limit": 0}, ["query", "limit"]),
        ("/sweeps/{id}/trials", {"optimizer": "adamz"}, ["query", "optimizer"]),
        ("/sweeps/{id}/trials", {"sort": "lr"}, ["query", "sort"]),
        ("/sweeps/{id}/trials", {"cursor": "WzFd"}, ["query", "cursor"]),
    ],
)
def test_bad_query_parameters_are_422(
    live_api: LiveAPI,
    finished_grid: dict[str, Any],
    path: str,
    params: dict[str, Any],
    loc: list[str],
) -> None:
    response = live_api.client.get(path.format(id=finished_grid["id"]), params=params)
    assert response.status_code == 422, response.text
    assert [d["loc"] for d in response.json()["detail"]] == [loc]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/sweeps/987654"),
        ("POST", "/sweeps/987654/cancel"),
        ("GET", "/sweeps/987654/trials"),
        ("GET", "/sweeps/987654/leaderboard"),
        ("GET", "/trials/987654"),
        ("GET", "/trials/987654/metrics"),
    ],
)
def test_unknown_ids_are_404_with_a_json_body(live_api: LiveAPI, method: str, path: str) -> None:
    response = live_api.client.request(method, path)
    assert response.status_code == 404
    assert response.json()["detail"].endswith("987654 not found")


def test_health_readiness_and_docs(live_api: LiveAPI) -> None:
    assert live_api.client.get("/healthz").json() == {"status": "ok"}
    first = live_api.client.get("/readyz")
    # not ready while the workers warm up (trials would share the CPUs with it), then ready
    assert (first.status_code, first.json()["workers"]) in ((503, "warming up"), (200, "warm"))
    wait_until(  # the controller's warm-up tasks finish: the workers have torch imported
        lambda: live_api.client.get("/readyz").status_code == 200,
        timeout=120,
        what="the workers' warm-up",
    )
    ready = live_api.client.get("/readyz").json()
    assert (ready["status"], ready["workers"], ready["database"]) == ("ready", "warm", "ok")
    assert ready["cpus"] == 2.0
    docs = live_api.client.get(f"{live_api.url}/docs")  # a page: it needs a signed-in session
    assert (docs.status_code, docs.headers["location"]) == (303, "/login?next=%2Fdocs")
    openapi = live_api.client.get("/openapi.json").json()
    assert "/api/v1/sweeps/{sweep_id}/leaderboard" in openapi["paths"]


@pytest.mark.parametrize(
    ("resources", "field"),
    [({"gpus_per_trial": 1}, "gpus_per_trial"), ({"cpus_per_trial": 64}, "cpus_per_trial")],
)
def test_resources_no_node_has_are_422(
    live_api: LiveAPI, resources: dict[str, float], field: str
) -> None:
    before = live_api.client.get("/sweeps").json()["items"]
    response = live_api.client.post("/sweeps", json=grid_spec(resources=resources))
    assert response.status_code == 422
    (detail,) = response.json()["detail"]
    assert detail["loc"] == ["body", "resources", field]
    assert "no node of the Ray cluster has more than" in detail["msg"]
    assert live_api.client.get("/sweeps").json()["items"] == before
