"""Who may do what, on a real server and both databases: every API operation against every
kind of caller (no token, a bad, expired or revoked one, a viewer, member or owner of the
sweep's project, a member of another project, an admin) gets the status the rules say."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest

from optisweep.service.accounts import repository as accounts
from optisweep.service.db.base import utcnow
from tests.service.conftest import LiveAPI
from tests.service.sweep_specs import grid_spec

CALLERS = (
    "none",
    "bad",
    "expired",
    "revoked",
    "viewer",
    "member",
    "owner",
    "stranger",
    "admin",
)
"""stranger: a member of another project only."""

SIGNED_OUT = {"none", "bad", "expired", "revoked"}
IN_PROJECT = {"viewer", "member", "owner", "admin"}


@dataclass
class World:
    """Callers' headers, a finished sweep (and a trial) of project ``matrix``, a package."""

    api: LiveAPI
    http: httpx.Client
    """A client with no credentials of its own: each request says who it is from."""
    headers: dict[str, dict[str, str]]
    sweep_id: int
    trial_id: int
    package: str
    token_ids: dict[str, int]


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("model.py", "workload = None\n")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def world(live_api: LiveAPI) -> World:
    """Users with each role in project ``matrix``, one in ``matrix-other``, and tokens that
    no longer sign in; a finished sweep of ``matrix``."""
    client = live_api.client
    for project in ("matrix", "matrix-other"):
        made = client.post("/projects", json={"name": project})
        assert made.status_code in (201, 409), made.text
    headers: dict[str, dict[str, str]] = {"none": {}, "bad": {"Authorization": "Bearer osw_x"}}
    headers["admin"] = dict(client.headers)
    token_ids: dict[str, int] = {}
    for role, project in (
        ("viewer", "matrix"),
        ("member", "matrix"),
        ("owner", "matrix"),
        ("stranger", "matrix-other"),
    ):
        name = f"matrix-{role}"
        made = client.post("/users", json={"name": name})
        assert made.status_code == 201, made.text
        headers[role] = {"Authorization": f"Bearer {made.json()['token']['token']}"}
        token_ids[role] = made.json()["token"]["id"]
        member_role = "member" if role == "stranger" else role
        url = f"/projects/{project}/members/{name}"
        assert client.put(url, json={"role": member_role}).status_code == 200
    revoked = client.post("/tokens", json={"name": "to revoke"}).json()
    assert client.delete(f"/tokens/{revoked['id']}").status_code == 200
    headers["revoked"] = {"Authorization": f"Bearer {revoked['token']}"}
    with live_api.sessions() as session:  # one made 91 days ago, valid for 90
        admin = accounts.user_named(session, "admin")
        _, expired = accounts.create_token(
            session, admin, name="old", days=90, now=utcnow() - timedelta(days=91)
        )
        session.commit()
    headers["expired"] = {"Authorization": f"Bearer {expired}"}
    created = client.post("/sweeps", json=grid_spec(), params={"project": "matrix"})
    assert created.status_code == 201, created.text
    sweep = live_api.wait(created.json()["id"])
    trial = live_api.trials(sweep["id"])[0]
    package = client.post("/code", content=_zip(), params={"project": "matrix"}).json()["package"]
    http = httpx.Client(base_url=f"{live_api.url}/api/v1", timeout=30)
    return World(live_api, http, headers, sweep["id"], trial["id"], package, token_ids)


def _long_sweep(world: World, caller: str = "admin") -> int:
    """A sweep of ``matrix`` that runs long enough to be cancelled."""
    spec = {
        "name": "to-cancel",
        "workload": {"name": "rosenbrock", "epochs": 1000, "steps_per_epoch": 200},
        "space": {"optimizers": ["sgd"], "lr": {"values": [1e-5]}},
        "search": {"algorithm": "grid"},
        "objective": {"metric": "val_loss", "mode": "min"},
    }
    made = world.http.post(
        "/sweeps", json=spec, params={"project": "matrix"}, headers=world.headers[caller]
    )
    assert made.status_code == 201, made.text
    return int(made.json()["id"])


def _expect_in_project(
    ok: int, *, viewer: int | None = None, member: int | None = None
) -> dict[str, int]:
    """401 signed out, 404 for a stranger, ``ok`` for the project's roles (unless given)."""
    expected = dict.fromkeys(SIGNED_OUT, 401) | {"stranger": 404}
    expected |= dict.fromkeys(IN_PROJECT, ok)
    if viewer is not None:
        expected["viewer"] = viewer
    if member is not None:
        expected["member"] = member
    return expected


def _anyone(ok: int) -> dict[str, int]:
    """401 signed out, ``ok`` for anyone signed in."""
    return {caller: 401 if caller in SIGNED_OUT else ok for caller in CALLERS}


def _admins(ok: int) -> dict[str, int]:
    """401 signed out, 403 signed in, ``ok`` for an admin."""
    return {caller: 401 if caller in SIGNED_OUT else 403 for caller in CALLERS} | {"admin": ok}


Request = Callable[[World, str], httpx.Response]


def _get(path: str) -> Request:
    def request(world: World, caller: str) -> httpx.Response:
        url = path.format(
            sweep_id=world.sweep_id,
            trial_id=world.trial_id,
            number=0,  # the sweep's first trial, by its number
            package=world.package,
            project="matrix",
        )
        return world.http.get(url, headers=world.headers[caller])

    return request


def _submit(world: World, caller: str) -> httpx.Response:
    spec = {**grid_spec(), "name": f"by-{caller}"}
    return world.http.post(
        "/sweeps", json=spec, params={"project": "matrix"}, headers=world.headers[caller]
    )


def _cancel(world: World, caller: str) -> httpx.Response:
    sweep_id = _long_sweep(world)
    response = world.http.post(f"/sweeps/{sweep_id}/cancel", headers=world.headers[caller])
    world.api.client.post(f"/sweeps/{sweep_id}/cancel")  # never left running
    return response


def _upload(world: World, caller: str) -> httpx.Response:
    return world.http.post(
        "/code", content=_zip(), params={"project": "matrix"}, headers=world.headers[caller]
    )


def _post(path: str, body: Any) -> Request:
    def request(world: World, caller: str) -> httpx.Response:
        url = path.format(sweep_id=world.sweep_id)
        return world.http.post(url, json=body(caller), headers=world.headers[caller])

    return request


def _set_member(world: World, caller: str) -> httpx.Response:
    return world.http.put(
        "/projects/matrix/members/matrix-viewer",
        json={"role": "viewer"},
        headers=world.headers[caller],
    )


def _remove_member(world: World, caller: str) -> httpx.Response:
    response = world.http.delete(
        "/projects/matrix/members/matrix-viewer", headers=world.headers[caller]
    )
    world.api.client.put("/projects/matrix/members/matrix-viewer", json={"role": "viewer"})
    return response


def _revoke_anothers(world: World, caller: str) -> httpx.Response:
    made = world.api.client.post("/tokens", json={"name": "someone else's"}).json()
    return world.http.delete(f"/tokens/{made['id']}", headers=world.headers[caller])


def _parse(world: World, caller: str) -> httpx.Response:
    return world.http.post(
        "/specs/parse",
        content="a: 1",
        headers={**world.headers[caller], "content-type": "text/plain"},
    )


SWEEP_READS = [
    "/sweeps/{sweep_id}",
    "/sweeps/{sweep_id}/trials",
    "/sweeps/{sweep_id}/leaderboard",
    "/sweeps/{sweep_id}/report",
    "/sweeps/{sweep_id}/metrics",
    "/sweeps/{sweep_id}/objectives",
    "/sweeps/{sweep_id}/curves",
    "/sweeps/{sweep_id}/lr-sensitivity",
    "/sweeps/{sweep_id}/best-so-far",
    "/sweeps/{sweep_id}/parallel",
    "/sweeps/{sweep_id}/importance",
    "/sweeps/{sweep_id}/trials.csv",
    "/sweeps/{sweep_id}/trials/{number}",
    "/sweeps/{sweep_id}/spec.yaml",
    "/trials/{trial_id}",
    "/trials/{trial_id}/events",
    "/trials/{trial_id}/metrics",
    "/code/{package}",
]

MATRIX: list[tuple[str, str, Request, dict[str, int]]] = [
    *[("GET", path, _get(path), _expect_in_project(200)) for path in SWEEP_READS],
    ("GET", "/sweeps", _get("/sweeps"), _anyone(200)),
    ("GET", "/comparisons", _get("/comparisons?sweeps={sweep_id}"), _expect_in_project(200)),
    ("POST", "/sweeps", _submit, _expect_in_project(201, viewer=403)),
    ("POST", "/sweeps/{sweep_id}/cancel", _cancel, _expect_in_project(200, viewer=403, member=403)),
    # who may cancel a sweep may extend it (the matrix's grid sweep cannot be: a 422 once
    # allowed) and rerun its failed trials (it has none: nothing changes)
    (
        "POST",
        "/sweeps/{sweep_id}/extend",
        _post("/sweeps/{sweep_id}/extend", lambda caller: {"trials": 1}),
        _expect_in_project(422, viewer=403, member=403),
    ),
    (
        "POST",
        "/sweeps/{sweep_id}/rerun",
        _post("/sweeps/{sweep_id}/rerun", lambda caller: {"failed": True}),
        _expect_in_project(200, viewer=403, member=403),
    ),
    ("POST", "/code", _upload, _expect_in_project(200, viewer=403)),
    ("POST", "/specs/parse", _parse, _anyone(200)),
    ("GET", "/me", _get("/me"), _anyone(200)),
    ("GET", "/session", _get("/session"), _anyone(200)),
    ("GET", "/tokens", _get("/tokens"), _anyone(200)),
    ("POST", "/tokens", _post("/tokens", lambda caller: {"name": caller}), _anyone(201)),
    ("DELETE", "/tokens/{token_id}", _revoke_anothers, _anyone(404) | {"admin": 200}),
    ("GET", "/users", _get("/users"), _admins(200)),
    ("POST", "/users", _post("/users", lambda caller: {"name": f"made-by-{caller}"}), _admins(201)),
    ("GET", "/projects", _get("/projects"), _anyone(200)),
    ("POST", "/projects", _post("/projects", lambda caller: {"name": f"p-{caller}"}), _admins(201)),
    (
        "GET",
        "/projects/{project}/members",
        _get("/projects/{project}/members"),
        _expect_in_project(200),
    ),
    (
        "PUT",
        "/projects/{project}/members/{user}",
        _set_member,
        _expect_in_project(200, viewer=403, member=403),
    ),
    (
        "DELETE",
        "/projects/{project}/members/{user}",
        _remove_member,
        _expect_in_project(204, viewer=403, member=403),
    ),
    (
        "GET",
        "/audit",
        _get("/audit"),
        _anyone(403) | {"owner": 200, "admin": 200},
    ),
    ("GET", "/openapi.json", _get("/openapi.json"), _anyone(200)),
]
"""(method, path as the schema writes it, the request, the expected status per caller)."""

PUBLIC = {("GET", "/healthz"), ("GET", "/readyz"), ("POST", "/session"), ("DELETE", "/session")}
"""Operations outside the matrix: the health checks and signing the dashboard in and out
(tested in test_sign_in_and_out)."""


def test_the_matrix_covers_every_operation_of_the_api(world: World) -> None:
    schema = world.api.client.get("/openapi.json").json()
    operations = {
        (method.upper(), path.removeprefix("/api/v1"))
        for path, item in schema["paths"].items()
        for method in item
    }
    covered = {(method, path) for method, path, _, _ in MATRIX}
    assert operations - PUBLIC - covered == set()


@pytest.mark.parametrize(
    ("method", "path", "request_", "expected"), MATRIX, ids=[f"{m} {p}" for m, p, _, _ in MATRIX]
)
def test_each_caller_gets_the_status_the_rules_say(
    world: World,
    method: str,
    path: str,
    request_: Request,
    expected: dict[str, int],
) -> None:
    got = {caller: request_(world, caller).status_code for caller in CALLERS}
    if method == "POST" and path == "/code":  # the same bytes: 201 the first time, then 200
        got = {caller: 200 if status == 201 else status for caller, status in got.items()}
    assert got == expected


def test_401s_say_how_to_sign_in_and_a_stranger_sees_no_other_projects_sweeps(
    world: World,
) -> None:
    response = world.http.get("/sweeps")
    assert response.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer" in response.json()["detail"]
    listed = world.http.get("/sweeps", headers=world.headers["stranger"]).json()["items"]
    assert world.sweep_id not in [s["id"] for s in listed]
    seen = world.http.get("/sweeps", headers=world.headers["viewer"]).json()["items"]
    assert world.sweep_id in [s["id"] for s in seen]
    hidden = world.http.get(f"/sweeps/{world.sweep_id}", headers=world.headers["stranger"])
    assert hidden.json() == {"detail": f"sweep {world.sweep_id} not found"}  # as if none


def test_a_member_cancels_their_own_sweep_and_the_audit_log_says_who(world: World) -> None:
    sweep_id = _long_sweep(world, caller="member")
    cancelled = world.http.post(f"/sweeps/{sweep_id}/cancel", headers=world.headers["member"])
    assert cancelled.status_code == 200, cancelled.text
    events = world.http.get(
        "/audit", params={"project": "matrix", "limit": 1000}, headers=world.headers["owner"]
    ).json()["items"]
    mine = [e for e in events if e["target"].startswith(f"sweep {sweep_id} ")]
    assert [(e["action"], e["user_name"]) for e in mine] == [
        ("sweep.cancel", "matrix-member"),
        ("sweep.submit", "matrix-member"),
    ]
    assert all(e["address"] == "127.0.0.1" for e in mine)
    actions = {e["action"] for e in events}
    assert {"code.upload", "member.set", "member.remove", "project.create"} <= actions
    everything = world.api.client.get("/audit", params={"limit": 1000}).json()["items"]
    assert {"token.create", "token.revoke", "user.create"} <= {e["action"] for e in everything}
    not_theirs = world.http.get(
        "/audit", params={"project": "matrix"}, headers=world.headers["stranger"]
    )
    assert not_theirs.status_code == 404


def test_a_revoked_token_stops_working_at_once(world: World) -> None:
    made = world.http.post("/tokens", json={"name": "short"}, headers=world.headers["viewer"])
    token = {"Authorization": f"Bearer {made.json()['token']}"}
    assert world.http.get("/me", headers=token).status_code == 200
    listed = world.http.get("/tokens", headers=world.headers["viewer"]).json()
    assert "token" not in listed[0]  # never the secret again
    assert listed[0]["prefix"] == made.json()["token"][:8]
    revoked = world.http.delete(f"/tokens/{made.json()['id']}", headers=token)
    assert revoked.status_code == 200
    assert world.http.get("/me", headers=token).status_code == 401


def test_sign_in_and_out(world: World) -> None:
    with httpx.Client(base_url=f"{world.api.url}/api/v1", timeout=30) as browser:
        refused = browser.post("/session", json={"token": "osw_nope"})
        assert refused.status_code == 401
        token = world.headers["viewer"]["Authorization"].removeprefix("Bearer ")
        signed_in = browser.post("/session", json={"token": token})
        assert signed_in.status_code == 200
        assert signed_in.json()["user"]["name"] == "matrix-viewer"
        assert browser.get(f"/sweeps/{world.sweep_id}").status_code == 200
        csrf = {"X-CSRF-Token": signed_in.json()["csrf_token"]}
        assert browser.delete("/session", headers=csrf).status_code == 204
        assert browser.get(f"/sweeps/{world.sweep_id}").status_code == 401
