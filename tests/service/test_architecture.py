"""The layering the code promises: the server process imports no training code."""

from __future__ import annotations

import ast
import subprocess
import sys

from tests.conftest import REPO_ROOT

TRAINING_CODE = (
    "optisweep.workers.train",
    "optisweep.workers.backends.stacked",
    "optisweep.workers.backends.alone",
    "optisweep.workers.backends.function",
    "optisweep.workers.lr_range",
    "optisweep.workers.memory",
    "optisweep.workers.checkpoint",
)


def test_the_server_imports_no_training_code() -> None:
    # A fresh interpreter: this test session has imported everything already.
    check = (
        "import sys; from optisweep.service.main import create_app; "
        "from optisweep.service.cli import app; "
        "create_app(); "
        f"loaded = [m for m in {TRAINING_CODE!r} if m in sys.modules]; "
        "print(loaded); sys.exit(1 if loaded else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", check], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


GENERIC_NAMES = {"service", "workers", "optimizers", "migrations"}
"""The repository's folders: they install as optisweep.service, ..., never by these names."""


def test_nothing_imports_the_folders_by_their_generic_names() -> None:
    # A user's project has its own workers.py and optimizers.py: optisweep's code, its tests,
    # examples and benchmarks import optisweep.* only (user code in tests does on purpose).
    wrong = []
    for folder in (
        "service",
        "workers",
        "optimizers",
        "migrations",
        "optisweep",
        "tests",
        "examples",
        "benchmarks",
        "docs",
    ):
        for path in sorted((REPO_ROOT / folder).rglob("*.py")):
            if "node_modules" in path.parts or path.is_relative_to(REPO_ROOT / "optisweep"):
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = (
                    [alias.name for alias in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                    if isinstance(node, ast.ImportFrom) and not node.level
                    else []
                )
                wrong += [f"{path}: {n}" for n in names if n.split(".")[0] in GENERIC_NAMES]
    assert wrong == []


def test_the_sweeps_domain_imports_no_controller() -> None:
    # polar's endpoint -> service -> repository: validation and expansion live in sweeps; the
    # controller runs sweeps and may import sweeps, never the other way.
    wrong = []
    for path in sorted((REPO_ROOT / "service" / "sweeps").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module.startswith("optisweep.service.controller"):
                    wrong.append(f"{path.name}: {node.module}")
            elif isinstance(node, ast.Import):
                wrong += [
                    f"{path.name}: {a.name}"
                    for a in node.names
                    if a.name.startswith("optisweep.service.controller")
                ]
    assert wrong == []


def test_the_warm_up_names_the_modules_a_pack_loads() -> None:
    from optisweep.service.controller.inbox import Inbox
    from optisweep.service.controller.ray_runtime import INBOX_MODULE, TASKS_MODULE
    from optisweep.workers.tasks import run_pack

    # named, not imported, where the server starts (they would import torch before the
    # warm-up); a rename must rename them here too
    assert (Inbox.__module__, run_pack.__module__) == (INBOX_MODULE, TASKS_MODULE)
