"""ECharts for the dashboard, put where every install finds it: ``vendor/`` beside this file.

Every build puts it there (setup.py calls ``install_echarts``): an editable install into the
source tree, a wheel into the wheel. It copies the files from ``node_modules`` when ``npm ci``
made them (``make install``), and otherwise fetches the tarball package-lock.json pins from
the npm registry (``NPM_CONFIG_REGISTRY``, as npm reads it, or registry.npmjs.org) and checks
it against the lock's sha512 before unpacking. ECharts' LICENSE, NOTICE and licenses/ travel
with it. Standard library only: the build loads this file by path, before any dependency is
installed.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import tarfile
import urllib.request
from pathlib import Path

DASHBOARD = Path(__file__).resolve().parent
VENDOR = Path(__file__).parent / "vendor"
"""Where the dashboard serves ECharts from (``/static/vendor/echarts.min.js``)."""
ECHARTS_JS = VENDOR / "echarts.min.js"
FILES = ("dist/echarts.min.js", "LICENSE", "NOTICE")
"""The package's files the dashboard needs, paths inside the npm package; licenses/ too."""
DEFAULT_REGISTRY = "https://registry.npmjs.org"


def locked_echarts(lock: Path = DASHBOARD / "package-lock.json") -> tuple[str, str]:
    """The ECharts version package-lock.json pins and its integrity (``sha512-<base64>``)."""
    entry = json.loads(lock.read_text())["packages"]["node_modules/echarts"]
    return entry["version"], entry["integrity"]


def _destination(name: str) -> str:
    """Where a file of the package goes under ``vendor/``: dist's file at the top."""
    return name.removeprefix("dist/")


def _copy_installed(source: Path, dest: Path) -> None:
    """The files from an npm-installed package folder."""
    for name in FILES:
        shutil.copyfile(source / name, dest / _destination(name))
    licenses = source / "licenses"
    if licenses.is_dir():
        shutil.copytree(licenses, dest / "licenses", dirs_exist_ok=True)


def fetch_tarball(version: str, integrity: str) -> bytes:
    """The echarts-``version`` tarball from the npm registry, checked against ``integrity``."""
    registry = os.environ.get("NPM_CONFIG_REGISTRY") or DEFAULT_REGISTRY
    url = f"{registry.rstrip('/')}/echarts/-/echarts-{version}.tgz"
    with urllib.request.urlopen(url, timeout=120) as response:
        data: bytes = response.read()
    algorithm, _, expected = integrity.partition("-")
    digest = base64.b64encode(hashlib.new(algorithm, data).digest()).decode()
    if digest != expected:
        raise RuntimeError(f"{url}: its {algorithm} is not package-lock.json's ({integrity})")
    return data


def _unpack(data: bytes, dest: Path) -> None:
    """The files from an npm tarball (its members sit under ``package/``)."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar.getmembers():
            name = member.name.removeprefix("package/")
            if member.isfile() and (name in FILES or name.startswith("licenses/")):
                target = dest / _destination(name)
                target.parent.mkdir(parents=True, exist_ok=True)
                extracted = tar.extractfile(member)
                assert extracted is not None  # a regular file always has content
                target.write_bytes(extracted.read())


def install_echarts(dest: Path = VENDOR) -> str:
    """Put ECharts into ``dest``: from node_modules if npm installed the locked version
    there, else from the registry; says which."""
    version, integrity = locked_echarts()
    dest.mkdir(parents=True, exist_ok=True)
    installed = DASHBOARD / "node_modules" / "echarts"
    manifest = installed / "package.json"
    if manifest.is_file() and json.loads(manifest.read_text()).get("version") == version:
        _copy_installed(installed, dest)
        return f"echarts {version} from {installed}"
    _unpack(fetch_tarball(version, integrity), dest)
    return f"echarts {version} from the npm registry"


if __name__ == "__main__":
    print(install_echarts())
