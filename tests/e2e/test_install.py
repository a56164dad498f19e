"""optisweep as users install it: a wheel built from a clean checkout (no ``npm ci``), into
fresh virtual environments.

- The server's: the wheel over the packages it needs. Those come from this session's .venv (a
  ``.pth`` line; installing torch and Ray anew would take minutes), but optisweep itself, its
  console script and its import names come from the wheel alone: no editable install, no
  repository on the path. It serves a sweep whose page draws its charts in Chromium, with the
  ECharts the build fetched.
- The client's: ``pip install optisweep`` from the wheel, its dependencies from the package
  index; no torch, Ray, SQLAlchemy or FastAPI. It reads that server's sweeps.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.conftest import REPO_ROOT, clean_environment
from tests.e2e.conftest import Server
from tests.e2e.test_dashboard import browser, page, series_of, sign_in, wait_for

__all__ = ["browser", "page"]  # the Chromium fixtures, shared with the dashboard's tests

pytestmark = pytest.mark.slow

GENERIC_NAMES = ("service", "workers", "optimizers", "migrations")
HEAVY = ("torch", "ray", "sqlalchemy", "fastapi")
SPEC = {
    "name": "from-the-wheel",
    "workload": {"name": "rosenbrock", "epochs": 3, "steps_per_epoch": 10},
    "space": {"optimizers": ["adam", "momentum"], "lr": {"values": [1e-3, 3e-3]}},
    "search": {"algorithm": "grid"},
    "objective": {"metric": "val_loss", "mode": "min"},
}


def run(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    """Run a command; its output, or the test fails with it."""
    result = subprocess.run(
        [str(arg) for arg in args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, f"{args}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout + result.stderr


def checkout(dest: Path) -> Path:
    """What a clean clone of this working tree holds: its tracked and unignored files (links as
    links), so node_modules/ and vendor/ are not there."""
    listed = run(
        "git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=REPO_ROOT
    )
    for name in sorted(set(filter(None, listed.split("\0")))):
        source, target = REPO_ROOT / name, dest / name
        if not source.exists() and not source.is_symlink():  # deleted, not yet committed
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(os.readlink(source))
        else:
            shutil.copy2(source, target)
    return dest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel ``pip wheel`` builds from a clean checkout."""
    source = checkout(tmp_path_factory.mktemp("clone"))
    assert not (source / "service" / "dashboard" / "node_modules").exists()
    dist = tmp_path_factory.mktemp("dist")
    log = run(sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", source, "-w", dist)
    assert "from the npm registry" in log  # no node_modules: the build fetched ECharts itself
    return next(dist.glob("optisweep-*.whl"))


def venv_python(root: Path) -> Path:
    """A fresh virtual environment's interpreter (``--without-pip``: pip runs from outside)."""
    run(sys.executable, "-m", "venv", "--without-pip", root)
    return root / "bin" / "python"


def pip_into(python: Path, *args: str | Path) -> None:
    """This session's pip, installing into ``python``'s environment."""
    run(sys.executable, "-m", "pip", "--python", python, "install", "--quiet", *args)


def outside_env() -> dict[str, str]:
    """An environment with nothing of this repository on the path."""
    return clean_environment(PYTHONPATH="")


@pytest.fixture(scope="module")
def server_python(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh environment holding the wheel, over this session's packages (not its optisweep:
    the editable install's finder is in a .pth file that a .pth line does not run)."""
    python = venv_python(tmp_path_factory.mktemp("server-venv"))
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").strip())
    (site / "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    pip_into(python, "--no-deps", "--no-index", wheel)
    return python


@pytest.fixture(scope="module")
def wheel_server(server_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`optisweep serve` as the wheel installed it, run from a folder with no code in it."""
    root = tmp_path_factory.mktemp("wheel-server")
    server = Server(
        database_url=f"sqlite:///{root / 'optisweep.db'}",
        log=root / "server.log",
        env={"PYTHONPATH": ""},
        command=str(server_python.parent / "optisweep"),
        cwd=root,
    )
    server.wait_ready()
    yield server
    assert server.stop() == 0


def test_the_wheel_installs_one_import_name(wheel: Path, server_python: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        top_level = archive.read(next(n for n in names if n.endswith("top_level.txt")))
    assert top_level.decode().split() == ["optisweep"]
    dist_info = "-".join(wheel.name.split("-")[:2]) + ".dist-info"
    assert {name.split("/")[0] for name in names} == {"optisweep", dist_info}
    for path in ("vendor/echarts.min.js", "vendor/LICENSE", "vendor/NOTICE"):
        assert f"optisweep/service/dashboard/{path}" in names
    check = (
        "import importlib.util, optisweep.service.main, optisweep.workers.tasks; "
        f"print(optisweep.__file__); print([n for n in {GENERIC_NAMES!r} "
        "if importlib.util.find_spec(n)])"
    )
    output = run(server_python, "-c", check, env=outside_env(), cwd=wheel.parent)
    where, generic = output.splitlines()[:2]
    assert "server-venv" in where
    assert generic == "[]"


def test_the_wheel_serves_a_sweep_whose_charts_draw(wheel_server: Server, page: Page) -> None:
    api = f"{wheel_server.url}/api/v1"
    sweep = httpx.post(f"{api}/sweeps", json=SPEC, headers=wheel_server.headers, timeout=30)
    assert sweep.status_code == 201, sweep.text
    sign_in(page, wheel_server)
    page.goto(f"{wheel_server.url}/sweeps/{sweep.json()['id']}")
    expect(page.locator("#status")).to_have_text("completed", timeout=120_000)
    page.wait_for_selector("#chart-curves[data-drawn]")
    wait_for(page, f"{series_of('chart-curves')}.some(s => s.data.length > 0)")
    canvas = page.locator("#chart-curves canvas").first.bounding_box()
    assert canvas is not None
    assert canvas["width"] > 100
    assert canvas["height"] > 100


@pytest.fixture(scope="module")
def client_python(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip install optisweep`` (the wheel) into a fresh environment, dependencies from the
    package index."""
    python = venv_python(tmp_path_factory.mktemp("client-venv"))
    pip_into(python, wheel)
    return python


def test_the_client_install_has_no_server_packages(client_python: Path) -> None:
    missing = run(
        client_python,
        "-c",
        f"import importlib.util; print([n for n in {HEAVY!r} if importlib.util.find_spec(n)])",
        env=outside_env(),
    )
    assert missing.strip() == "[]"
    imported = run(client_python, "-X", "importtime", "-c", "import optisweep", env=outside_env())
    modules = {line.split("|")[-1].strip().split(".")[0] for line in imported.splitlines()}
    assert "optisweep" in modules
    assert not modules & set(HEAVY)


def test_the_client_install_reads_a_server_and_says_what_serving_needs(
    client_python: Path, wheel_server: Server, tmp_path: Path
) -> None:
    httpx.post(
        f"{wheel_server.url}/api/v1/sweeps", json=SPEC, headers=wheel_server.headers, timeout=30
    ).raise_for_status()
    listing = run(
        client_python,
        "-c",
        "import optisweep, sys; client = optisweep.Client(sys.argv[1], token=sys.argv[2]); "
        "print([s.name for s in client.sweeps()])",
        wheel_server.url,
        wheel_server.token,
        env=outside_env(),
        cwd=tmp_path,
    )
    assert "from-the-wheel" in listing
    serve = subprocess.run(
        [str(client_python.parent / "optisweep"), "serve"],
        capture_output=True,
        text=True,
        env=outside_env(),
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert serve.returncode == 1
    assert "pip install 'optisweep[server]'" in serve.stderr
    assert "Traceback" not in serve.stderr
