"""The production-like docker compose stack and its image, checked by parsing the files."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
APP_SERVICES = ["api", "migrate", "ray-head", "ray-worker"]
DATABASE_URL = "postgresql://optisweep:optisweep@postgres:5432/optisweep"
INSTALL = 'RUN pip install ".[server,postgres,cmaes]"'
SERVE = "optisweep serve --host 0.0.0.0 --port 8000"


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    """The services of docker-compose.yml, with YAML anchors resolved."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return dict(compose["services"])


@pytest.fixture(scope="module")
def dockerfile() -> list[str]:
    """The Dockerfile's instructions, one string each, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def command_text(service: dict[str, Any]) -> str:
    """A service's command as one string, whether written as a list or as a string."""
    command = service["command"]
    return " ".join(command) if isinstance(command, list) else str(command)


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a mapping, whether written as a mapping or as a list."""
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {name: str(value) for name, value in env.items()}


def test_all_services_exist(services: dict[str, Any]) -> None:
    """The stack has the database, the migration, the API and a Ray head and worker."""
    assert set(services) == {"postgres", *APP_SERVICES}


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_share_one_image(services: dict[str, Any], name: str) -> None:
    """Every optisweep service runs the one image built from the repository's Dockerfile."""
    service = services[name]
    assert service["image"] == "optisweep:latest"
    assert service["build"]["context"] == "."
    assert "cpu" in service["build"]["args"]["TORCH_INDEX"]


def test_postgres_is_healthchecked_and_migrate_waits(services: dict[str, Any]) -> None:
    """Postgres has a pg_isready healthcheck and migrate starts only once it passes."""
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_migrate_is_a_one_shot_upgrade(services: dict[str, Any]) -> None:
    """Migrate runs `optisweep db upgrade` once and is never restarted."""
    assert command_text(services["migrate"]) == "optisweep db upgrade"
    assert services["migrate"]["restart"] == "no"


def test_api_serves_on_8000_after_migrate_and_ray(services: dict[str, Any]) -> None:
    """The API serves on 0.0.0.0:8000 in its container, published on the host's loopback
    unless the operator says otherwise, after the migration and a healthy Ray head."""
    api = services["api"]
    assert command_text(api).endswith(f"exec {SERVE}")
    assert api["ports"] == ["${OPTISWEEP_PUBLISH:-127.0.0.1}:8000:8000"]
    assert environment(api)["OPTISWEEP_HOST"] == "0.0.0.0"
    assert api["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert api["depends_on"]["ray-head"]["condition"] == "service_healthy"


def test_api_joins_ray_as_an_empty_node(services: dict[str, Any]) -> None:
    """The API's container joins Ray with no CPUs or GPUs, so its driver has a local raylet."""
    command = command_text(services["api"])
    assert command.index("ray start --address=ray-head:6379") < command.index(SERVE)
    assert "--num-cpus=0" in command
    assert "--num-gpus=0" in command


def test_ray_head_schedules_nothing_and_is_healthchecked(services: dict[str, Any]) -> None:
    """The head starts with --head and no CPUs, and `ray status` is its healthcheck."""
    head = services["ray-head"]
    command = command_text(head).split()
    assert command[:3] == ["ray", "start", "--head"]
    assert {"--port=6379", "--num-cpus=0", "--block"} <= set(command)
    assert " ".join(head["healthcheck"]["test"][1:3]) == "ray status"


def test_ray_worker_joins_the_head_with_a_gpu(services: dict[str, Any]) -> None:
    """Workers join ray-head:6379 after it is healthy and reserve NVIDIA GPUs."""
    worker = services["ray-worker"]
    command = command_text(worker).split()
    assert command[:2] == ["ray", "start"]
    assert "--address=ray-head:6379" in command
    assert "--block" in command
    assert worker["depends_on"]["ray-head"]["condition"] == "service_healthy"
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert any(
        device["driver"] == "nvidia"
        and "gpu" in device["capabilities"]
        and device.get("count") in {"all", 1}
        for device in devices
    )


def test_ray_worker_can_be_scaled(services: dict[str, Any]) -> None:
    """A worker has no fixed container name or host port, so --scale can start several."""
    worker = services["ray-worker"]
    assert "container_name" not in worker
    assert "ports" not in worker


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_share_database_and_ray_settings(services: dict[str, Any], name: str) -> None:
    """Every optisweep service gets the same database URL, Ray address and Ray auth mode."""
    env = environment(services[name])
    assert env["OPTISWEEP_DATABASE_URL"] == DATABASE_URL
    assert env["OPTISWEEP_RAY_ADDRESS"] == "ray-head:6379"
    assert env["RAY_AUTH_MODE"] == "token"


def test_ray_token_is_shared_and_never_hard_coded(services: dict[str, Any]) -> None:
    """All Ray processes read one RAY_AUTH_TOKEN that compose requires from the environment."""
    tokens = {environment(services[name])["RAY_AUTH_TOKEN"] for name in APP_SERVICES}
    assert len(tokens) == 1
    assert re.fullmatch(r"\$\{RAY_AUTH_TOKEN:\?[^}]+\}", tokens.pop())


def test_dockerfile_installs_cpu_torch_before_the_project(dockerfile: list[str]) -> None:
    """The image is python:3.11-slim; torch==2.13.0 comes from TORCH_INDEX before the project."""
    assert [line for line in dockerfile if line.startswith("FROM ")][-1] == "FROM python:3.11-slim"
    assert "ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu" in dockerfile
    torch = next(i for i, line in enumerate(dockerfile) if "torch==2.13.0" in line)
    assert dockerfile[torch].startswith("RUN pip install")
    assert '--index-url "${TORCH_INDEX}"' in dockerfile[torch]
    project = next(i for i, line in enumerate(dockerfile) if line.startswith(INSTALL))
    assert torch < project


def test_dockerfile_builds_the_package_with_its_one_import_name(dockerfile: list[str]) -> None:
    """The build context holds optisweep/ (whose links name the four folders) and setup.py
    (which gets ECharts), copied before the server's install; no node stage is needed."""
    project = next(i for i, line in enumerate(dockerfile) if line.startswith(INSTALL))
    copied = {
        word for line in dockerfile[:project] if line.startswith("COPY ") for word in line.split()
    }
    for path in ("setup.py", "optisweep", "optimizers", "workers", "service", "migrations"):
        assert path in copied, path
    assert not any(line.startswith("FROM node") for line in dockerfile)


def test_dockerfile_serves_as_a_non_root_user(dockerfile: list[str]) -> None:
    """The image works in /app, runs as a non-root user, exposes 8000 and serves by default."""
    assert "WORKDIR /app" in dockerfile
    users = [line.split()[1] for line in dockerfile if line.startswith("USER ")]
    assert users
    assert users[-1] not in {"root", "0"}
    assert "EXPOSE 8000" in dockerfile
    cmd = [line for line in dockerfile if line.startswith("CMD ")][-1]
    assert " ".join(json.loads(cmd.removeprefix("CMD "))) == SERVE


def test_the_api_answers_only_its_hosts_and_keeps_its_token(services: dict[str, Any]) -> None:
    """Trusted hosts are configured (DNS rebinding), and the first start's admin token lands
    in a volume, not in a container that a rebuild throws away."""
    env = environment(services["api"])
    assert env["OPTISWEEP_ALLOWED_HOSTS"].startswith("${OPTISWEEP_ALLOWED_HOSTS:-localhost")
    token_dir = env["OPTISWEEP_TOKEN_FILE"].rsplit("/", 1)[0]
    assert any(volume.endswith(f":{token_dir}") for volume in services["api"]["volumes"])
