"""POST /api/v1/code: users' projects stored by content hash, refused when too large, not a
zip, or when the server is reachable from other machines; sweeps naming packages."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import httpx
import pytest

from service.config import Settings
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
    with running_server(settings, run_controller=False) as url:
        first = httpx.post(f"{url}/api/v1/code", content=package)
        again = httpx.post(f"{url}/api/v1/code", content=package)
        assert (first.status_code, again.status_code) == (201, 200)
        assert first.json() == again.json()
        sha = first.json()["package"]
        assert first.json()["files"] == 2
        assert httpx.get(f"{url}/api/v1/code/{sha}").json() == first.json()
        assert httpx.get(f"{url}/api/v1/code/{'0' * 64}").status_code == 404
        assert httpx.get(f"{url}/api/v1/code/not-a-hash").status_code == 404
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
    with running_server(settings, run_controller=False) as url:
        response = httpx.post(f"{url}/api/v1/code", content=body)
    assert response.status_code == status
    assert message in response.text
    assert not Path(settings.code_dir).exists() or not any(Path(settings.code_dir).iterdir())


def test_a_server_reachable_from_other_machines_takes_no_code_unless_told(
    settings: Settings,
) -> None:
    package = _zip({"model.py": ""})
    exposed = settings.model_copy(update={"host": "0.0.0.0"})
    with running_server(exposed, run_controller=False) as url:
        refused = httpx.post(f"{url}/api/v1/code", content=package)
    assert refused.status_code == 403
    assert "OPTISWEEP_ALLOW_CODE_UPLOAD=1" in refused.json()["detail"]
    allowed = exposed.model_copy(update={"allow_code_upload": True})
    with running_server(allowed, run_controller=False) as url:
        assert httpx.post(f"{url}/api/v1/code", content=package).status_code == 201


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
    with running_server(settings, run_controller=False) as url:
        response = httpx.post(f"{url}/api/v1/sweeps", json=sweep)
        assert response.status_code == 422, response.text
        (error,) = response.json()["detail"]
        assert error["loc"] == loc
        assert message in error["msg"]
        assert httpx.get(f"{url}/api/v1/sweeps").json()["items"] == []
