"""A server safe to expose: rate limits (429 with Retry-After), Idempotency-Key on submits and
uploads (concurrent repeats too), trusted Host headers, security headers, no CORS unless
configured; and a database from before accounts, migrated with its sweeps."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from optisweep.service.config import Settings
from optisweep.service.db.base import utcnow
from optisweep.service.db.migrate import upgrade_engine
from optisweep.service.db.session import make_engine
from tests.service.conftest import LiveAPI, running_server
from tests.service.sweep_specs import grid_spec


def test_past_its_rate_a_token_and_an_address_get_429_with_retry_after(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'limits.db'}",
        rate_limit="5/minute",
        rate_limit_anonymous="3/minute",
    )
    with running_server(settings, run_controller=False) as served:
        api = f"{served.url}/api/v1"
        signed_in = [httpx.get(f"{api}/sweeps", headers=served.headers) for _ in range(6)]
        assert [r.status_code for r in signed_in] == [200] * 5 + [429]
        assert 1 <= int(signed_in[-1].headers["retry-after"]) <= 60
        assert "at most 5 per 1 minute" in signed_in[-1].json()["detail"]
        anonymous = [httpx.get(f"{api}/healthz") for _ in range(4)]
        assert [r.status_code for r in anonymous] == [200] * 3 + [429]
        assert int(anonymous[-1].headers["retry-after"]) >= 1
        # Each token has its own budget: another one is not slowed by the first.
        made = httpx.post(f"{api}/tokens", json={"name": "x"}, headers=served.headers)
        assert made.status_code == 429  # the admin's token is spent
        assert (
            httpx.get(f"{api}/sweeps", headers={"Authorization": "Bearer osw_x"}).status_code == 429
        )


def test_a_bad_rate_is_a_clear_setting_error() -> None:
    with pytest.raises(ValueError, match="not a rate like '100/minute'"):
        Settings(rate_limit="fast")


def test_twenty_concurrent_submits_with_one_key_create_one_sweep(live_api: LiveAPI) -> None:
    spec = {**grid_spec(), "name": "idempotent"}
    key = {"Idempotency-Key": "submit-once-0001"}
    before = {
        s["id"] for s in live_api.client.get("/sweeps", params={"limit": 1000}).json()["items"]
    }

    def submit(_: int) -> httpx.Response:
        return live_api.client.post("/sweeps", json=spec, headers=key)

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(submit, range(20)))
    assert {r.status_code for r in answers} == {201}
    assert len({r.json()["id"] for r in answers}) == 1
    assert len({r.headers["location"] for r in answers}) == 1
    after = {
        s["id"] for s in live_api.client.get("/sweeps", params={"limit": 1000}).json()["items"]
    }
    assert after - before == {answers[0].json()["id"]}
    again = live_api.client.post("/sweeps", json=spec, headers=key)
    assert again.json() == answers[0].json()  # later too: the first answer, nothing new
    other = live_api.client.post("/sweeps", json={**spec, "name": "another"}, headers=key)
    assert other.status_code == 422
    (error,) = other.json()["detail"]
    assert error["loc"] == ["header", "Idempotency-Key"]
    assert "used with another body" in error["msg"]
    live_api.wait(answers[0].json()["id"])


def test_a_failed_request_frees_its_key_and_uploads_take_keys_too(live_api: LiveAPI) -> None:
    bad = {**grid_spec(), "space": {"optimizers": ["nope"], "lr": {"values": [0.1]}}}
    key = {"Idempotency-Key": "retry-after-a-fix"}
    assert live_api.client.post("/sweeps", json=bad, headers=key).status_code == 422
    assert live_api.client.post("/sweeps", json=bad, headers=key).status_code == 422
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("once.py", "x = 1\n")
    upload = {"Idempotency-Key": "upload-once", "Content-Type": "application/octet-stream"}
    first = live_api.client.post("/code", content=buffer.getvalue(), headers=upload)
    repeat = live_api.client.post("/code", content=buffer.getvalue(), headers=upload)
    assert (first.status_code, repeat.status_code) == (201, 201)  # the first answer, again
    assert first.json() == repeat.json()
    other = live_api.client.post("/code", content=b"other", headers=upload)
    assert other.status_code == 422
    assert other.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]


def test_a_foreign_host_header_is_refused_and_pages_carry_security_headers(
    live_api: LiveAPI,
) -> None:
    rebound = httpx.get(
        f"{live_api.url}/api/v1/healthz", headers={"Host": "attacker.example"}, timeout=30
    )
    assert rebound.status_code == 400  # DNS rebinding: a name that is not this server's
    page = httpx.get(f"{live_api.url}/login", timeout=30)
    csp = page.headers["content-security-policy"]
    assert "script-src 'self';" in csp
    assert "unsafe-inline" not in csp.split("script-src", 1)[1].split(";")[0]
    assert "frame-ancestors 'none'" in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["x-frame-options"] == "DENY"
    preflight = httpx.options(
        f"{live_api.url}/api/v1/sweeps",
        headers={"Origin": "https://elsewhere.example", "Access-Control-Request-Method": "POST"},
        timeout=30,
    )
    assert "access-control-allow-origin" not in preflight.headers  # no CORS by default


def test_cors_and_hosts_are_opened_only_where_configured(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'cors.db'}",
        allowed_hosts="127.0.0.1,optisweep.example",  # type: ignore[arg-type]
        cors_origins="https://dash.example",  # type: ignore[arg-type]
    )
    with running_server(settings, run_controller=False) as served:
        named = httpx.get(f"{served.url}/api/v1/healthz", headers={"Host": "optisweep.example"})
        assert named.status_code == 200
        preflight = httpx.options(
            f"{served.url}/api/v1/sweeps",
            headers={"Origin": "https://dash.example", "Access-Control-Request-Method": "POST"},
        )
        assert preflight.headers["access-control-allow-origin"] == "https://dash.example"


def test_a_database_from_before_accounts_keeps_its_sweeps_in_project_default(
    database_url_fresh: str,
) -> None:
    engine = make_engine(database_url_fresh)
    upgrade_engine(engine, "0006")
    spec = json.dumps(grid_spec(name="old"))
    with engine.begin() as db:
        for sweep_id in (1, 2):
            db.execute(
                text(
                    "INSERT INTO sweeps (id, name, spec, status, num_trials, created_at, "
                    "updated_at) VALUES (:id, 'old', :spec, 'completed', 1, :now, :now)"
                ),
                {"id": sweep_id, "spec": spec, "now": utcnow()},
            )
        db.execute(
            text(
                "INSERT INTO trials (id, sweep_id, number, optimizer, hyperparameters, seed,"
                " status, attempt, epochs_run, created_at) VALUES (1, 1, 0, 'adam', '{}', 0,"
                " 'completed', 1, 1, :now)"
            ),
            {"now": utcnow()},
        )
    upgrade_engine(engine)
    with engine.connect() as db:
        rows = db.execute(
            text("SELECT s.id, p.name FROM sweeps s JOIN projects p ON p.id = s.project_id")
        ).all()
        assert sorted(rows) == [(1, "default"), (2, "default")]
        assert db.execute(text("SELECT count(*) FROM trials")).scalar() == 1  # nothing cascaded
        db.execute(
            text("INSERT INTO projects (name, created_at) VALUES ('next', :now)"), {"now": utcnow()}
        )
    engine.dispose()
    settings = Settings(database_url=database_url_fresh)
    with running_server(settings, run_controller=False) as served:  # the first start's admin
        listed = httpx.get(f"{served.url}/api/v1/sweeps", headers=served.headers).json()
        assert [s["id"] for s in listed["items"]] == [2, 1]


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url_fresh(request: pytest.FixtureRequest, tmp_path: Path) -> object:
    """An empty database of each backend, for migrating."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    from tests.service.conftest import fresh_postgres_database

    with fresh_postgres_database() as url:
        yield url
