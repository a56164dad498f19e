"""Users' own code end to end: the examples copied elsewhere, submitted with the CLI from their
own directories to a real `optisweep serve`, their code shipped to Ray workers as a package;
and what goes wrong with users' code, each a clear error with nothing lost for other sweeps."""

from __future__ import annotations

import random
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from optisweep.workers.workloads import TIME_METRIC
from tests.conftest import REPO_ROOT, wait_until
from tests.e2e.conftest import Server, run_cli

EXAMPLES = REPO_ROOT / "examples"
USER_CODE = REPO_ROOT / "tests" / "workers" / "user_code"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server on a fresh SQLite file, its debugging routes on (to look at its modules)."""
    root = tmp_path_factory.mktemp("own-code")
    running = Server(
        database_url=f"sqlite:///{root / 'own.db'}",
        log=root / "server.log",
        env={"OPTISWEEP_DEBUG": "1"},
    )
    running.wait_ready()
    yield running
    assert running.stop() == 0


def _get(server: Server, path: str, **params: Any) -> Any:
    response = httpx.get(
        f"{server.url}/api/v1{path}", params=params, timeout=30, headers=server.headers
    )
    assert response.status_code == 200, response.text
    return response.json()


def _copy(example: str, into: Path, **changes: Any) -> Path:
    """The example copied to ``into`` (as a user copies it anywhere), its sweep edited."""
    target = into / example
    shutil.copytree(EXAMPLES / example, target)
    spec = yaml.safe_load((target / "sweep.yaml").read_text())
    for section, values in changes.items():
        spec[section] = {**spec.get(section, {}), **values} if isinstance(values, dict) else values
    (target / "sweep.yaml").write_text(yaml.safe_dump(spec))
    return target


def _submit(server: Server, project: Path, *args: str, spec: str = "sweep.yaml") -> int:
    result = run_cli("submit", spec, "--wait", "--url", server.url, *args, cwd=project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Leaderboard: val_accuracy (max, last epoch)" in result.stdout
    return int(result.stdout.split("sweep ", 1)[1].split()[0])


def _curves(server: Server, sweep_id: int) -> dict[int, dict[str, list[float]]]:
    trials = _get(server, f"/sweeps/{sweep_id}/trials", limit=100)["items"]
    return {
        t["number"]: {
            s["name"]: s["values"] for s in _get(server, f"/trials/{t['id']}/metrics")["series"]
        }
        for t in trials
    }


def test_the_model_example_runs_packed_from_its_own_directory(
    server: Server, tmp_path: Path
) -> None:
    # Without dropout, so that a packed trial equals the same trial alone.
    small = {"epochs": 2, "dropout": 0.0, "channels": 4}
    project = _copy("own-model", tmp_path, workload=small, search={"num_trials": 3})
    sweep_id = _submit(server, project)
    trials = _get(server, f"/sweeps/{sweep_id}/trials", limit=100)["items"]
    assert {t["status"] for t in trials} == {"completed"}
    assert all(t["pack_id"] for t in trials)
    assert _get(server, f"/sweeps/{sweep_id}")["packing"] is None

    # The same trials one per task: a spec outside the project, which --code names (the same
    # code, so the same package: stored once).
    spec = yaml.safe_load((project / "sweep.yaml").read_text())
    (tmp_path / "alone.yaml").write_text(yaml.safe_dump({**spec, "resources": {"pack": False}}))
    alone_id = _submit(server, tmp_path, "--code", str(project), spec="alone.yaml")
    assert not any(t["pack_id"] for t in _get(server, f"/sweeps/{alone_id}/trials")["items"])
    packed_curves, alone_curves = _curves(server, sweep_id), _curves(server, alone_id)
    assert packed_curves.keys() == alone_curves.keys()
    for number, series in packed_curves.items():
        for name, values in series.items():
            if name == TIME_METRIC:  # a pack's members share its time; alone, a trial takes its own
                continue
            assert values == pytest.approx(alone_curves[number][name], rel=1e-4), (number, name)
    modules = _get(server, "/debug/modules")
    assert "model" not in modules  # the user's module was imported on workers only


SHADOWS = {
    "workers.py": "LOADER_WORKERS = 0  # a DataLoader helper\n",
    "optimizers.py": "OPTIMIZERS = {'mine': None}  # most ML projects have one\n",
    "service/__init__.py": "NAME = 'the user service'\n",
    "migrations/__init__.py": "",
    "migrations/env.py": "RAN = False\n",
}
"""A user's modules named as optisweep's folders are: optisweep imports none of them."""
USES_SHADOWS = """
import sys

import migrations
import optimizers
import service
import workers

mine = [getattr(workers, "LOADER_WORKERS", None), getattr(optimizers, "OPTIMIZERS", None)]
mine += [getattr(service, "NAME", None), getattr(migrations, "__file__", "")]
if mine[:3] != [0, {"mine": None}, "the user service"] or "migrations" not in mine[3]:
    raise ImportError(f"not the user's own: {workers.__file__} {sys.path}")
"""


def test_a_project_with_modules_named_as_optisweeps_folders_is_tuned(
    server: Server, tmp_path: Path
) -> None:
    # One project with both workloads: the model (packed) and the loop (a function workload),
    # each importing the user's own workers, optimizers, service and migrations.
    project = _copy("own-model", tmp_path, workload={"epochs": 2}, search={"num_trials": 3})
    shutil.copy(EXAMPLES / "own-loop" / "train.py", project / "train.py")
    for name, text in SHADOWS.items():
        (project / name).parent.mkdir(exist_ok=True)
        (project / name).write_text(text)
    for module in ("model.py", "train.py"):
        (project / module).write_text((project / module).read_text() + USES_SHADOWS)
    loop = yaml.safe_load((EXAMPLES / "own-loop" / "sweep.yaml").read_text())
    loop["workload"]["epochs"] = 2
    loop["search"] = {"algorithm": "random", "num_trials": 2, "seed": 0}
    (project / "loop.yaml").write_text(yaml.safe_dump(loop))

    model_id = _submit(server, project)
    loop_id = _submit(server, project, spec="loop.yaml")
    model_trials = _get(server, f"/sweeps/{model_id}/trials", limit=100)["items"]
    assert {t["status"] for t in model_trials} == {"completed"}
    assert all(t["pack_id"] for t in model_trials)
    loop_trials = _get(server, f"/sweeps/{loop_id}/trials", limit=100)["items"]
    assert [t["status"] for t in loop_trials] == ["completed", "completed"]
    assert "workers" not in _get(server, "/debug/modules")  # nor the server imported them


def test_the_loop_example_reports_every_epoch_and_asha_stops_some(
    server: Server, tmp_path: Path
) -> None:
    project = _copy(
        "own-loop",
        tmp_path,
        workload={"epochs": 4},
        search={
            "num_trials": 8,
            "scheduler": {"name": "asha", "grace_period": 1, "reduction_factor": 2},
        },
    )
    sweep_id = _submit(server, project)
    sweep = _get(server, f"/sweeps/{sweep_id}")
    assert sweep["status"] == "completed"
    assert (
        sweep["packing"]
        == "trials run one per task: a function workload runs its own training loop"
    )
    trials = _get(server, f"/sweeps/{sweep_id}/trials", limit=100)["items"]
    assert {t["status"] for t in trials} <= {"completed", "stopped"}
    assert sum(t["status"] == "stopped" for t in trials) >= 1
    for trial in trials:
        series = {
            s["name"]: s["steps"] for s in _get(server, f"/trials/{trial['id']}/metrics")["series"]
        }
        assert set(series) == {"train_loss", "val_loss", "val_accuracy", "time_seconds"}
        assert series["val_accuracy"] == list(range(1, trial["epochs_run"] + 1))
    modules = _get(server, "/debug/modules")
    assert "train" not in modules


@pytest.fixture(scope="module")
def user_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tests' user project (mylab), copied once: one package for the tests below."""
    project = tmp_path_factory.mktemp("user") / "project"
    shutil.copytree(USER_CODE, project, ignore=shutil.ignore_patterns("__pycache__"))
    return project


def _write(folder: Path, spec: dict[str, Any]) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def _spec(entrypoint: str, **workload: Any) -> dict[str, Any]:
    return {
        "name": "user-code",
        "code": {"path": "."},
        "workload": {"entrypoint": entrypoint, "epochs": 2, **workload},
        "space": {"optimizers": ["sgd"], "lr": {"values": [0.05]}},
        "search": {"algorithm": "grid"},
        "objective": {"metric": "val_loss", "mode": "min"},
        "resources": {"max_failures": 1},
    }


@pytest.mark.parametrize(
    ("entrypoint", "workload", "message"),
    [
        ("mylab.nope:fit", {}, "workload.entrypoint: entrypoint 'mylab.nope:fit': does not import"),
        ("mylab.models:not_a_workload", {}, "int is neither a model workload"),
        ("mylab.models:workload", {"width": 0}, "workload.width"),
    ],
)
def test_users_code_that_cannot_run_is_a_clear_error(
    server: Server,
    user_project: Path,
    tmp_path: Path,
    entrypoint: str,
    workload: dict[str, Any],
    message: str,
) -> None:
    spec = _write(tmp_path, _spec(entrypoint, **workload))
    before = _get(server, "/sweeps")["items"]
    result = run_cli("submit", spec, "--url", server.url, "--code", str(user_project))
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert _get(server, "/sweeps")["items"] == before  # nothing written


def test_a_per_step_cosine_over_a_users_own_loop_is_refused_and_per_epoch_runs(
    server: Server, user_project: Path, tmp_path: Path
) -> None:
    """A function workload's steps per epoch are its loop's: a per-step cosine (whose length
    is the run's) is a clear error; counted per epoch it runs."""
    spec = _spec("mylab.loops:fit")
    spec["space"]["schedule"] = {"kind": "cosine", "per": "step", "warmup_steps": 2}
    result = run_cli(
        "submit", _write(tmp_path / "step", spec), "--url", server.url, "--code", str(user_project)
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "space.schedule.per: a per-step cosine" in result.stdout + result.stderr
    spec["space"]["schedule"] = {"kind": "cosine", "warmup_steps": 1}
    result = run_cli(
        "submit",
        _write(tmp_path / "epoch", spec),
        "--url",
        server.url,
        "--code",
        str(user_project),
        "--wait",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    sweep_id = int(result.stdout.split("sweep ", 1)[1].split()[0])
    (trial,) = _get(server, f"/sweeps/{sweep_id}/trials")["items"]
    lrs = {
        s["name"]: s["values"] for s in _get(server, f"/trials/{trial['id']}/metrics")["series"]
    }["lr"]
    assert lrs == pytest.approx([0.05 / 2, 0.05])  # warmed up for an epoch; cosine then


def test_a_users_function_that_raises_fails_alone_with_its_traceback(
    server: Server, user_project: Path, tmp_path: Path
) -> None:
    code = ("--code", str(user_project))
    failing = _write(tmp_path / "failing", _spec("mylab.loops:fit", fail_at_epoch=2))
    result = run_cli("submit", failing, "--url", server.url, *code)
    assert result.returncode == 0, result.stdout + result.stderr
    sweep_id = int(result.stdout.split("sweep ", 1)[1].split()[0])
    # A healthy sweep beside it, of a model vmap cannot run: it runs one trial per task.
    healthy = _spec("mylab.data:unpackable", epochs=3)
    healthy["space"]["lr"] = {"values": [0.01, 0.02]}  # type: ignore[index]
    result = run_cli(
        "submit", _write(tmp_path / "healthy", healthy), "--wait", "--url", server.url, *code
    )
    assert result.returncode == 0, result.stdout + result.stderr
    healthy_id = int(result.stdout.split("sweep ", 1)[1].split()[0])
    sweep = _get(server, f"/sweeps/{healthy_id}")
    assert sweep["status"] == "completed"
    assert "trials run one per task: a stacked step failed" in sweep["packing"]
    for trial in _get(server, f"/sweeps/{healthy_id}/trials")["items"]:
        assert (trial["status"], trial["pack_id"]) == ("completed", None)
        series = _get(server, f"/trials/{trial['id']}/metrics")["series"]
        assert {s["name"]: s["steps"] for s in series}["val_loss"] == [1, 2, 3]

    failed = wait_until(
        lambda: (s := _get(server, f"/sweeps/{sweep_id}"))["status"] == "failed" and s,
        timeout=120,
        what="the failing sweep to end",
    )
    assert "1 of 1 trials failed: RuntimeError: the user's loop broke" in failed["error"]
    (trial,) = _get(server, f"/sweeps/{sweep_id}/trials")["items"]
    assert (trial["status"], trial["attempt"]) == ("failed", 2)  # retried once (max_failures)
    first, _, trace = trial["error"].partition("\n\n")
    assert first == "RuntimeError: the user's loop broke at epoch 2"
    assert trace.startswith("Traceback (most recent call last)")
    assert 'loops.py", line' in trace  # the user's frame, its directories cut
    assert "[... earlier frames cut]" not in trace  # stored whole, from its first line

    # A model with a shape bug cannot train even alone: refused when submitted (not accepted
    # to fail every trial thrice), naming the entrypoint, the error and the user's line.
    broken = run_cli(
        "submit", _write(tmp_path / "broken", _spec("mylab.data:misshapen")), "--url",
        server.url, *code,
    )  # fmt: skip
    assert broken.returncode == 2
    assert "workload.entrypoint: misshapen: one trial alone fails: RuntimeError: mat1 and mat2" in (
        broken.stderr
    )
    assert "(data.py:" in broken.stderr
    # A function workload's own loop with a type error in its first step: failed at its first
    # attempt, not retried (the same code fails the same way on every try).
    typo = run_cli(
        "submit", _write(tmp_path / "typo", _spec("mylab.loops:fit", type_error=True)),
        "--url", server.url, *code,
    )  # fmt: skip
    assert typo.returncode == 0, typo.stdout + typo.stderr
    typo_id = int(typo.stdout.split("sweep ", 1)[1].split()[0])
    wait_until(
        lambda: _get(server, f"/sweeps/{typo_id}")["status"] == "failed",
        timeout=120,
        what="the sweep with a type error to end",
    )
    (trial,) = _get(server, f"/sweeps/{typo_id}/trials")["items"]
    assert (trial["status"], trial["attempt"]) == ("failed", 1)
    assert trial["error"].startswith("TypeError:")
    assert "(not retried: the same code fails this way on every try)" in trial["error"]
    assert "mylab" not in {name.split(".")[0] for name in _get(server, "/debug/modules")}


def test_a_package_over_the_limit_is_refused_before_upload(server: Server, tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(USER_CODE, project)
    (project / "weights.bin").write_bytes(random.Random(0).randbytes(2_000_000))  # does not zip
    (project / "sweep.yaml").write_text(yaml.safe_dump(_spec("mylab.models:workload")))
    result = run_cli(
        "submit", "sweep.yaml", "--url", server.url, "--max-code-mb", "0.5", cwd=project
    )
    assert result.returncode == 2
    assert "zips to more than the limit of 0.5 MB" in result.stdout + result.stderr
    (project / ".gitignore").write_text("*.bin\n")  # what .gitignore lists stays home
    result = run_cli(
        "submit", "sweep.yaml", "--url", server.url, "--max-code-mb", "0.5", cwd=project
    )
    assert result.returncode == 0, result.stdout + result.stderr
