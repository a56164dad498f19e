"""The layering the code promises: the server process imports no training code."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO_ROOT

TRAINING_CODE = (
    "optisweep.workers.train",
    "optisweep.workers.pack",
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
