"""Hostile requests to routes are a 4xx naming the parameter, never a 5xx (query strings, ids,
cursors); the OpenAPI schema and 405s say what the routes answer; no server path shows."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from optisweep.service.trials.models import Trial, TrialState
from tests.service.hostile.conftest import SPEC, Served, first_error


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/sweeps", "status"),
        ("/sweeps", "cursor"),
        ("/sweeps/{id}/trials", "optimizer"),
        ("/sweeps/{id}/curves", "metric"),
        ("/sweeps/{id}/importance", "optimizer"),
    ],
)
def test_nul_in_a_query_parameter_is_422_naming_it(
    served: Served, sweep_id: int, path: str, name: str
) -> None:
    response = served.client.get(path.format(id=sweep_id), params={name: "a\x00"})
    error = first_error(response)
    assert (error["loc"], error["type"]) == (["query", name], "string_unicode")


ID_ROUTES = [
    ("GET", "/sweeps/{id}"),
    ("POST", "/sweeps/{id}/cancel"),
    *[
        ("GET", f"/sweeps/{{id}}/{tail}")
        for tail in (
            "trials",
            "leaderboard",
            "curves",
            "lr-sensitivity",
            "best-so-far",
            "parallel",
            "importance",
            "trials.csv",
        )
    ],
    ("GET", "/trials/{id}"),
    ("GET", "/trials/{id}/events"),
    ("GET", "/trials/{id}/metrics"),
]


@pytest.mark.parametrize("row_id", [0, -1, 2**31, 2**63, 2**64, 10**30])
def test_ids_no_row_can_have_are_404_on_every_id_route(served: Served, row_id: int) -> None:
    for method, path in ID_ROUTES:
        response = served.client.request(method, path.format(id=row_id))
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["detail"].endswith(f"{row_id} not found")


@pytest.mark.parametrize(
    ("path", "params", "key"),
    [
        *[
            ("/sweeps", {}, key)
            for key in ([True], [2**31], [2**63], [0], ["5"], [[5]], [5.0], [None], [{}], [])
        ],
        *[
            ("/sweeps/{id}/trials", {"sort": "objective"}, key)
            for key in ([True, 1], ["0.5", 1], [[0.5], 1], [0.5, 2**40], [0.5, False], [0.5])
        ],
        ("/sweeps/{id}/trials", {"sort": "number"}, [0.5, 1]),
        ("/sweeps/{id}/trials", {"sort": "number"}, [2**31, 1]),
        ("/sweeps/{id}/trials", {"sort": "objective"}, "[NaN, 1]"),
    ],
)
def test_cursors_with_elements_of_the_wrong_type_or_range_are_422(
    served: Served, sweep_id: int, path: str, params: dict[str, str], key: Any
) -> None:
    raw = key if isinstance(key, str) else json.dumps(key)
    cursor = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
    response = served.client.get(path.format(id=sweep_id), params={**params, "cursor": cursor})
    assert first_error(response)["loc"] == ["query", "cursor"]


def test_a_cursor_the_api_issued_still_pages(served: Served) -> None:
    for _ in range(2):
        assert served.client.post("/sweeps", json=SPEC).status_code == 201
    first = served.client.get("/sweeps", params={"limit": 1}).json()
    assert first["next_cursor"] is not None
    second = served.client.get("/sweeps", params={"limit": 1, "cursor": first["next_cursor"]})
    assert second.status_code == 200
    assert second.json()["items"][0]["id"] < first["items"][0]["id"]


def test_every_status_a_route_returns_is_in_the_openapi_schema(served: Served) -> None:
    paths = served.client.get("/openapi.json").json()["paths"]
    for path, operations in paths.items():
        for method, operation in operations.items():
            codes = set(operation["responses"])
            if "{" in path:
                assert {"404", "422"} <= codes, (method, path)
            if "requestBody" in operation:
                assert {"413", "422"} <= codes, (method, path)
    assert "409" in paths["/api/v1/sweeps/{sweep_id}/cancel"]["post"]["responses"]
    assert "503" in paths["/api/v1/readyz"]["get"]["responses"]
    assert (
        "text/csv"
        in paths["/api/v1/sweeps/{sweep_id}/trials.csv"]["get"]["responses"]["200"]["content"]
    )


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/sweeps", {"GET", "POST"}),
        ("DELETE", "/sweeps/1", {"GET"}),
        ("GET", "/sweeps/1/cancel", {"POST"}),
        ("PATCH", "/specs/parse", {"POST"}),
    ],
)
def test_a_405_allows_every_method_of_the_path(
    served: Served, method: str, path: str, allowed: set[str]
) -> None:
    response = served.client.request(method, path)
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == allowed


def test_checkpoint_paths_are_shown_relative_to_the_checkpoint_folder(
    served: Served, sweep_id: int
) -> None:
    inside = served.checkpoint_dir.resolve() / "sweep-1-x" / "trial-0.pt"
    with served.sessions.begin() as session:  # the sweep's first two trials, as if they ran
        trials = list(
            session.scalars(
                select(Trial).where(Trial.sweep_id == sweep_id).order_by(Trial.number).limit(2)
            )
        )
        for trial, path in zip(trials, [inside, Path("/elsewhere/trial-1.pt")], strict=True):
            trial.status = TrialState.COMPLETED
            trial.checkpoint_path, trial.checkpoint_epoch = str(path), 2
            trial.objective = trial.best_objective = 0.5
        ids = [trial.id for trial in trials]
    shown = [served.client.get(f"/trials/{trial_id}").json() for trial_id in ids]
    assert [t["checkpoint_path"] for t in shown] == ["sweep-1-x/trial-0.pt", None]
    page = served.client.get(f"/sweeps/{sweep_id}/trials").json()["items"]
    assert {t["checkpoint_path"] for t in page} == {"sweep-1-x/trial-0.pt", None}
    board = served.client.get(f"/sweeps/{sweep_id}/leaderboard").json()
    assert board["entries"][0]["trial"]["checkpoint_path"] in ("sweep-1-x/trial-0.pt", None)
    assert (
        str(served.checkpoint_dir) not in served.client.get(f"/sweeps/{sweep_id}/trials.csv").text
    )
