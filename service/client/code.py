"""A user's project as a code package: zipped (what .gitignore leaves), within a size limit,
so that the server stores it once by hash and the workers run it."""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pathspec

from optisweep.service.client.errors import FieldError, InvalidInputError

MAX_CODE_MB = 50.0
ALWAYS_LEFT_OUT = (".git/", "__pycache__/", "*.pyc", ".venv/", ".mypy_cache/", ".ruff_cache/")
"""Left out of every package, .gitignore or not."""
_EPOCH = (1980, 1, 1, 0, 0, 0)
"""Every entry's timestamp: the same code zips to the same bytes, so to the same package."""


def code_error(message: str) -> InvalidInputError:
    """A problem with the code to ship, as an error on the spec's ``code`` field."""
    return InvalidInputError([FieldError("code", message)], status_code=None)


def project_files(root: Path) -> Iterator[Path]:
    """The files under ``root`` that a package holds: not ignored by any .gitignore on the
    way down (each applies to its own directory), nor by ``ALWAYS_LEFT_OUT``; sorted."""
    rules: list[tuple[Path, pathspec.GitIgnoreSpec]] = [
        (root, pathspec.GitIgnoreSpec.from_lines(ALWAYS_LEFT_OUT))
    ]

    def ignored(path: Path, is_dir: bool) -> bool:
        for base, spec in rules:
            if base == path or base not in path.parents:
                continue
            relative = path.relative_to(base).as_posix() + ("/" if is_dir else "")
            if spec.match_file(relative):
                return True
        return False

    for directory, dirs, files in os.walk(root):
        here = Path(directory)
        gitignore = here / ".gitignore"
        if gitignore.is_file():
            rules.append(
                (here, pathspec.GitIgnoreSpec.from_lines(gitignore.read_text().splitlines()))
            )
        dirs[:] = sorted(d for d in dirs if not ignored(here / d, True))
        for name in sorted(files):
            if not ignored(here / name, False):
                yield here / name


def zip_project(root: Path, *, max_bytes: int) -> tuple[bytes, int]:
    """The project at ``root`` as a deterministic zip, and its file count; InvalidInputError on
    the ``code`` field when it is no directory, holds nothing, or zips past ``max_bytes``."""
    if not root.is_dir():
        raise code_error(f"{root} is not a directory")
    buffer = io.BytesIO()
    count = 0
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in project_files(root):
            info = zipfile.ZipInfo(path.relative_to(root).as_posix(), date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
            count += 1
            if buffer.tell() > max_bytes:
                break
    data = buffer.getvalue()
    if len(data) > max_bytes:
        raise code_error(
            f"{root} zips to more than the limit of {max_bytes / 2**20:g} MB; list what is not "
            "code (data, checkpoints, environments) in its .gitignore, or raise the limit "
            "(--max-code-mb, max_code_mb=)"
        )
    if count == 0:
        raise code_error(f"{root} holds no files to ship")
    return data, count


def code_dir(spec: Mapping[str, Any], base: Path, override: Path | None) -> Path | None:
    """The project directory to ship: ``override``, else the spec's ``code.path`` (relative to
    ``base``, the spec file's folder); None when neither names one."""
    if override is not None:
        return Path(override).expanduser().resolve()
    code = spec.get("code")
    if not isinstance(code, dict) or not isinstance(code.get("path"), str):
        return None
    return (base / code["path"]).expanduser().resolve()


def with_package(spec: Mapping[str, Any], package: str) -> dict[str, Any]:
    """``spec`` naming the uploaded ``package`` instead of a directory."""
    code = {k: v for k, v in dict(spec.get("code") or {}).items() if k != "path"}
    return {**spec, "code": {**code, "package": package}}
