"""POST /api/v1/code: users' projects stored by content hash, refused when too large, not a
zip, or when the server is reachable from other machines; sweeps naming packages."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import httpx
import pytest

from optisweep.service.config import Settings
from tests.service.conftest import running_server


def _zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'code.db'}",
        code_dir=str(tmp_path / "code"),
        max_code_bytes=4_000,
    )


def test_a_package_is_stored_once_by_its_hash(settings: Settings) -> None:
    package = _zip({"mylab/__init__.py": "", "mylab/models.py": "workload = None\n"})
    with running_server(settings, run_controller=False) as served:
        first = httpx.post(f"{served.url}/api/v1/code", headers=served.headers, content=package)
        again = httpx.post(f"{served.url}/api/v1/code", headers=served.headers, content=package)
        assert (first.status_code, again.status_code) == (201, 200)
        assert first.json() == again.json()
        sha = first.json()["package"]
        assert first.json()["files"] == 2
        assert (
            httpx.get(f"{served.url}/api/v1/code/{sha}", headers=served.headers).json()
            == first.json()
        )
        assert (
            httpx.get(f"{served.url}/api/v1/code/{'0' * 64}", headers=served.headers).status_code
            == 404
        )
        assert (
            httpx.get(f"{served.url}/api/v1/code/not-a-hash", headers=served.headers).status_code
            == 404
        )
    assert [p.name for p in Path(settings.code_dir).iterdir()] == [f"{sha}.zip"]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"x" * 5_000, 413, "larger than the limit of 4000 bytes"),
        (b"not a zip", 422, "not a zip archive"),
        (_zip({"../escape.py": ""}), 422, "paths must be relative"),
        (_zip({"/etc/cron.d/x": ""}), 422, "paths must be relative"),
    ],
)
def test_a_bad_package_is_refused_and_nothing_is_stored(
    settings: Settings, body: bytes, status: int, message: str
) -> None:
    with running_server(settings, run_controller=False) as served:
        response = httpx.post(f"{served.url}/api/v1/code", headers=served.headers, content=body)
    assert response.status_code == status
    assert message in response.text
    assert not Path(settings.code_dir).exists() or not any(Path(settings.code_dir).iterdir())


def test_uploading_needs_the_member_role_and_a_package_stays_in_its_project(
    settings: Settings,
) -> None:
    package = _zip({"model.py": ""})
    with running_server(settings, run_controller=False) as served:
        api = f"{served.url}/api/v1"
        headers: dict[str, dict[str, str]] = {}
        for name in ("watcher", "builder", "stranger"):
            made = httpx.post(f"{api}/users", json={"name": name}, headers=served.headers)
            headers[name] = {"Authorization": f"Bearer {made.json()['token']['token']}"}
        for project in ("team", "elsewhere"):
            made = httpx.post(f"{api}/projects", json={"name": project}, headers=served.headers)
            assert made.status_code == 201, made.text
        for project, user, role in (
            ("team", "watcher", "viewer"),
            ("team", "builder", "member"),
            ("elsewhere", "stranger", "member"),
        ):
            url = f"{api}/projects/{project}/members/{user}"
            assert httpx.put(url, json={"role": role}, headers=served.headers).status_code == 200

        def upload(user: str, project: str) -> httpx.Response:
            return httpx.post(
                f"{api}/code", content=package, params={"project": project}, headers=headers[user]
            )

        refused = upload("watcher", "team")
        assert refused.status_code == 403
        assert "member role" in refused.json()["detail"]
        stored = upload("builder", "team")
        assert (stored.status_code, stored.json()["project"]) == (201, "team")
        assert upload("builder", "team").status_code == 200  # the same bytes: stored once
        sha = stored.json()["package"]
        assert httpx.get(f"{api}/code/{sha}", headers=headers["watcher"]).status_code == 200
        hidden = httpx.get(f"{api}/code/{sha}", headers=headers["stranger"])
        assert hidden.status_code == 404  # another project's package: as if it did not exist
        assert upload("stranger", "team").status_code == 404
        assert upload("stranger", "elsewhere").status_code == 201  # its own copy of the claim
        audit = httpx.get(f"{api}/audit", params={"project": "team"}, headers=served.headers)
        assert [e["action"] for e in audit.json()["items"]].count("code.upload") == 1


def _sweep(code: dict[str, object]) -> dict[str, object]:
    return {
        "name": "mine",
        "code": code,
        "workload": {"entrypoint": "model:workload", "epochs": 1},
        "space": {"optimizers": ["sgd"], "lr": {"values": [0.1]}},
        "search": {"algorithm": "grid"},
        "objective": {"metric": "val_loss", "mode": "min"},
    }


@pytest.mark.parametrize(
    ("sweep", "loc", "message"),
    [
        (_sweep({"package": "0" * 64}), ["body", "code", "package"], "no uploaded package"),
        (_sweep({"path": "."}), ["body", "code", "path"], "a directory is for the CLI"),
        (_sweep({"package": "abc"}), ["body", "code", "package"], "should match pattern"),
        (_sweep({"pip": ["--index-url=http://evil"]}), ["body", "code", "pip", 0], "pattern"),
        (
            {**_sweep({}), "workload": {"name": "quadratic", "entrypoint": "m:w", "epochs": 1}},
            ["body", "workload", "entrypoint"],
            "not both",
        ),
        (
            {**_sweep({}), "workload": {"entrypoint": "no colon", "epochs": 1}},
            ["body", "workload", "entrypoint"],
            "pattern",
        ),
        (
            {**_sweep({}), "workload": {"epochs": 1}},
            ["body", "workload"],
            "give name",
        ),
    ],
)
def test_a_sweep_naming_code_wrongly_is_a_422_naming_the_field(
    settings: Settings, sweep: dict[str, object], loc: list[object], message: str
) -> None:
    with running_server(settings, run_controller=False) as served:
        response = httpx.post(f"{served.url}/api/v1/sweeps", headers=served.headers, json=sweep)
        assert response.status_code == 422, response.text
        (error,) = response.json()["detail"]
        assert error["loc"] == loc
        assert message in error["msg"]
        assert (
            httpx.get(f"{served.url}/api/v1/sweeps", headers=served.headers).json()["items"] == []
        )
