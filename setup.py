"""The build's one step beyond pyproject.toml: the dashboard's ECharts goes into every build
(an editable install's source tree, a wheel), fetched by service/dashboard/vendor.py."""

import importlib.util
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
VENDOR_PY = ROOT / "service" / "dashboard" / "vendor.py"


class BuildWithECharts(build_py):
    """build_py, then ECharts into the dashboard's ``vendor/``."""

    def run(self) -> None:
        """Build the package, then add ECharts where the built package serves it from."""
        super().run()
        spec = importlib.util.spec_from_file_location("optisweep_vendor", VENDOR_PY)
        if spec is None or spec.loader is None:
            raise RuntimeError(f"cannot load {VENDOR_PY}")
        vendor = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(vendor)
        if self.editable_mode:
            dest = vendor.VENDOR
        else:
            dest = Path(self.build_lib) / "optisweep" / "service" / "dashboard" / "vendor"
        print(f"dashboard: {vendor.install_echarts(dest)}")  # pip shows it with -v


setup(cmdclass={"build_py": BuildWithECharts})
