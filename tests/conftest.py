"""Session-wide fixtures: one local Ray per test session, and a test workload plugin."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from optisweep.workers.workloads import ENTRY_POINT_GROUP

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parent.parent
FLAKY_ENTRY_POINT = "tests.service.flaky_workload:FLAKY"


def write_plugins(root: Path) -> str:
    """A real distribution under ``root`` that registers the `flaky` workload
    plugins; the PYTHONPATH that makes them importable. It links this repository's tests/ in,
    not the repository: its folders (workers/, service/) must not be importable by those names,
    as they are not where users install optisweep."""
    (root / "tests").parent.mkdir(parents=True, exist_ok=True)
    if not (root / "tests").exists():
        (root / "tests").symlink_to(REPO_ROOT / "tests")
    dist_info = root / "optisweep_flaky-0.1.dist-info"
    dist_info.mkdir(parents=True, exist_ok=True)
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: optisweep-flaky\nVersion: 0.1\n"
    )
    (dist_info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\nflaky = {FLAKY_ENTRY_POINT}\n"
    )
    return str(root)


@pytest.fixture(scope="session")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A PYTHONPATH with a real distribution that registers the test workload plugins."""
    return write_plugins(tmp_path_factory.mktemp("plugins"))


CHECKPOINT_DIR_VARIABLE = "OPTISWEEP_CHECKPOINT_DIR"
CODE_DIR_VARIABLE = "OPTISWEEP_CODE_DIR"
TOKEN_FILE_VARIABLE = "OPTISWEEP_TOKEN_FILE"


@pytest.fixture(scope="session", autouse=True)
def checkpoint_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Trials' checkpoints, uploaded code and tokens (with the session key beside them) of
    this session go to temporary folders, not the working tree or the home folder."""
    root = tmp_path_factory.mktemp("checkpoints")
    code = tmp_path_factory.mktemp("code")
    tokens = tmp_path_factory.mktemp("tokens")
    names = (CHECKPOINT_DIR_VARIABLE, CODE_DIR_VARIABLE, TOKEN_FILE_VARIABLE)
    previous = {name: os.environ.get(name) for name in names}
    os.environ[CHECKPOINT_DIR_VARIABLE] = str(root)
    os.environ[CODE_DIR_VARIABLE] = str(code)
    os.environ[TOKEN_FILE_VARIABLE] = str(tokens / "token")
    yield root
    for name, value in previous.items():
        if value is None:
            del os.environ[name]
        else:
            os.environ[name] = value


def clean_environment(**extra: str) -> dict[str, str]:
    """os.environ without RAY_* and OPTISWEEP_* variables (so no Ray setting leaks), plus extra.

    The session's checkpoint folder is kept, so servers in subprocesses write there too.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("RAY_", "OPTISWEEP_"))
        or key in (CHECKPOINT_DIR_VARIABLE, CODE_DIR_VARIABLE)
    }
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def ray_local(plugin_path: str) -> Iterator[None]:
    """A local Ray for the whole session; its workers can import the test plugin."""
    import ray

    # Ray's workers start from the raylet's environment, which copies this one.
    previous = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [plugin_path, previous]))
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture
def flaky_plugin(plugin_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the `flaky` plugin visible to this process too, for one test."""
    for entry in reversed(plugin_path.split(os.pathsep)):
        monkeypatch.syspath_prepend(entry)


@pytest.fixture
def float64() -> Iterator[None]:
    """Run a test under torch's float64 default dtype, restoring the old default after."""
    import torch

    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def wait_until(
    condition: Callable[[], T | None], *, timeout: float, what: str, every: float = 0.2
) -> T:
    """Poll ``condition`` until it returns something truthy (returned); fail after ``timeout``
    seconds, saying ``what`` was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


UNSTARTABLE = {
    "name": "unstartable",
    "workload": {"name": "quadratic", "epochs": 2},
    "space": {"optimizers": ["sgd"], "lr": "auto"},
    "search": {"algorithm": "random", "num_trials": 2},
    "objective": {"metric": "val_loss", "mode": "min"},
}


def queue_unstartable_sweep(database_url: str) -> int:
    """A PENDING sweep (a real row) that the controller cannot start: its stored ``lr: auto``
    range test gives bounds upside down (as a result written by a faulty or older version
    might), so resolving its search space raises when the controller takes it on. The API
    still shows it; the controller must fail it, and it alone. Its id."""
    from optisweep.service.db.session import make_engine, make_sessionmaker
    from optisweep.service.sweeps.repository import create_sweep, default_project_id
    from optisweep.service.sweeps.schemas import SweepCreate

    engine = make_engine(database_url)
    try:
        with make_sessionmaker(engine).begin() as session:
            sweep = create_sweep(
                session,
                spec=SweepCreate.model_validate(UNSTARTABLE),
                num_trials=2,
                project_id=default_project_id(session),
            )
            sweep.lr_range = {"sgd": {"low": 0.1, "high": 0.001, "lrs": [], "losses": []}}
            session.flush()
            sweep_id: int = sweep.id
    finally:
        engine.dispose()
    return sweep_id
