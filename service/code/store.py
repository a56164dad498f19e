"""Code packages stored by content hash: a zip of a user's project, where Ray can read it.

The server only stores and checks the archive (a zip, no absolute or parent paths, a bounded
unpacked size); it never unpacks or imports it. Ray ships it to the workers as a task's
``runtime_env`` ``working_dir``: the server puts it in the cluster's own store (GCS) by hash,
so every node gets the same code without a shared file system.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import re
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

MAX_UNPACKED_BYTES = 500 * 2**20
"""Ray's own limit on a working_dir, unpacked."""
MAX_FILES = 20_000
PACKAGE = re.compile(r"^[0-9a-f]{64}$")
"""A package id: the sha256 of the archive, in hex."""


class PackageError(ValueError):
    """An upload that is not a usable code package; the message says why."""


@dataclass(frozen=True)
class Package:
    """A stored package: its id (the archive's sha256), size and number of files."""

    package: str
    size: int
    files: int


class CodeStore:
    """Packages under ``root``, one ``<sha256>.zip`` each (uploading the same code twice
    stores it once)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()

    def path(self, package: str) -> Path:
        """Where package ``package`` is (or would be) stored."""
        if not PACKAGE.match(package):
            raise PackageError(f"{package[:80]!r} is not a package id (64 hex digits)")
        return self.root / f"{package}.zip"

    def get(self, package: str) -> Package | None:
        """The stored package ``package``, or None."""
        path = self.path(package)
        if not path.is_file():
            return None
        with zipfile.ZipFile(path) as archive:
            files = len(archive.infolist())
        return Package(package=package, size=path.stat().st_size, files=files)

    def put(self, data: bytes) -> tuple[Package, bool]:
        """Check and store an archive; the package, and whether it was new."""
        files = check_archive(data)
        package = hashlib.sha256(data).hexdigest()
        path = self.path(package)
        if path.is_file():
            return Package(package, len(data), files), False
        self.root.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{package}.{os.getpid()}.tmp")
        temporary.write_bytes(data)
        temporary.replace(path)  # atomic: a reader sees the whole archive or none
        return Package(package, len(data), files), True


def check_archive(data: bytes) -> int:
    """PackageError unless ``data`` is a zip Ray can use as a working_dir; its file count."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise PackageError("the body is not a zip archive") from None
    with archive:
        members = archive.infolist()
        if len(members) > MAX_FILES:
            raise PackageError(f"{len(members)} files, more than the limit of {MAX_FILES}")
        unpacked = 0
        for member in members:
            name = PurePosixPath(member.filename)
            if name.is_absolute() or ".." in name.parts or "\\" in member.filename:
                raise PackageError(f"{member.filename[:80]!r}: paths must be relative, inside")
            unpacked += member.file_size
        if unpacked > MAX_UNPACKED_BYTES:
            raise PackageError(
                f"{unpacked} bytes unpacked, more than Ray's limit of {MAX_UNPACKED_BYTES}"
            )
        return len(members)


PIN_SECONDS = 600
"""How long a package stays in Ray's object store after a task last asked for it (Ray deletes
packages no job references; a sweep between tasks references none)."""


def ray_uri(store: CodeStore, package: str) -> str:
    """The package as a URI of the Ray cluster's own store (``gcs://``), uploaded there if it
    is not (yet, or any more) and pinned for ``PIN_SECONDS``; every node downloads it from
    there, so no file system need be shared. Needs Ray initialised in this process."""
    from ray._private.runtime_env.packaging import (
        package_exists,
        pin_runtime_env_uri,
        upload_package_to_gcs,
    )

    uri = f"gcs://_ray_pkg_{package}.zip"
    now = time.monotonic()
    if now - _PINNED.get(uri, -math.inf) < PIN_SECONDS / 2:
        return uri
    with _PINNING:
        if not package_exists(uri):
            path = store.path(package)
            if not path.is_file():
                raise PackageError(f"package {package[:16]}... is no longer stored")
            upload_package_to_gcs(uri, path.read_bytes())
        pin_runtime_env_uri(uri, expiration_s=PIN_SECONDS)
        _PINNED[uri] = now
    return uri


_PINNED: dict[str, float] = {}
_PINNING = threading.Lock()


def runtime_env(code: Any, store: CodeStore | None) -> dict[str, Any] | None:
    """The Ray runtime_env for a sweep's ``code`` (its package as working_dir, its pip list),
    or None when the sweep brings no code (its tasks then inherit the job's environment)."""
    if code is None:
        return None
    env: dict[str, Any] = {}
    if code.package is not None:
        if store is None:
            raise PackageError("this server stores no code packages")
        env["working_dir"] = ray_uri(store, code.package)
    if code.pip:
        env["pip"] = list(code.pip)
    return env or None
