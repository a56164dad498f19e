"""Fixtures for the worker tests: installing a plugin distribution that exposes workloads."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from optisweep.workers.workloads import ENTRY_POINT_GROUP


@pytest.fixture
def install_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str, str], None]:
    """Put a real distribution (dist-info with entry_points.txt) for one workload on sys.path."""

    def install(name: str, target: str) -> None:
        dist_info = tmp_path / "optisweep_test_plugin-0.1.dist-info"
        dist_info.mkdir()
        (dist_info / "METADATA").write_text(
            "Metadata-Version: 2.1\nName: optisweep-test-plugin\nVersion: 0.1\n"
        )
        (dist_info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{name} = {target}\n")
        monkeypatch.syspath_prepend(str(tmp_path))

    return install
