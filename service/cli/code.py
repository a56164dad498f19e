"""A user's project as a code package: zipped (what .gitignore leaves), within a size limit,
uploaded once by hash (``optisweep submit``) or handed to Ray as the job's working directory
(``optisweep run``)."""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import httpx
import pathspec
import typer

from service.cli.common import answer, console, fail

if TYPE_CHECKING:
    from service.sweeps.schemas import SweepCreate

MAX_CODE_MB = 50.0
ALWAYS_LEFT_OUT = (".git/", "__pycache__/", "*.pyc", ".venv/", ".mypy_cache/", ".ruff_cache/")
"""Left out of every package, .gitignore or not."""
_EPOCH = (1980, 1, 1, 0, 0, 0)
"""Every entry's timestamp: the same code zips to the same bytes, so to the same package."""

CodeDir = Annotated[
    Path | None,
    typer.Option(
        "--code",
        help="The project directory to ship to the workers (overrides the spec's code.path).",
    ),
]
MaxCodeMb = Annotated[
    float, typer.Option(help="The largest zipped project to upload, in MB.", min=0.001)
]


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
    """The project at ``root`` as a deterministic zip, and its file count; a one-line error
    (exit code 2) when it is larger than ``max_bytes``."""
    if not root.is_dir():
        raise fail(f"code: {root} is not a directory")
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
        raise fail(
            f"code: {root} zips to more than the limit of {max_bytes / 2**20:g} MB; list what "
            "is not code (data, checkpoints, environments) in its .gitignore, or raise "
            "--max-code-mb"
        )
    if count == 0:
        raise fail(f"code: {root} holds no files to ship")
    return data, count


def code_dir(spec: dict[str, Any], spec_file: Path, override: Path | None) -> Path | None:
    """The project directory a spec file names (``code.path``, relative to the file's own
    directory) or ``--code`` gives; None when neither does."""
    if override is not None:
        return override.resolve()
    code = spec.get("code")
    if not isinstance(code, dict) or not isinstance(code.get("path"), str):
        return None
    return (spec_file.resolve().parent / code["path"]).resolve()


def upload(client: httpx.Client, root: Path, *, max_mb: float, project: str | None = None) -> str:
    """Zip and upload the project at ``root`` (to ``project``); its package id."""
    data, files = zip_project(root, max_bytes=int(max_mb * 2**20))
    response = client.post(
        "/code",
        content=data,
        headers={"Content-Type": "application/octet-stream"},
        params={"project": project} if project else None,
        timeout=300,
    )
    if response.status_code in (403, 413):
        raise fail(f"code: {response.json()['detail']}")
    package = answer(response)["package"]
    again = " (already there)" if response.status_code == 200 else ""
    console.print(
        f"code: {root.name}/ as package {package[:12]}, {files} files, "
        f"{len(data) / 1024:.0f} kB{again}"
    )
    return str(package)


def with_package(spec: dict[str, Any], package: str) -> dict[str, Any]:
    """``spec`` naming the uploaded ``package`` instead of a directory."""
    code = {k: v for k, v in dict(spec.get("code") or {}).items() if k != "path"}
    return {**spec, "code": {**code, "package": package}}


def job_code(
    spec: SweepCreate, spec_file: Path, override: Path | None
) -> tuple[SweepCreate, dict[str, Any] | None]:
    """For ``optisweep run``: the spec as its controller runs it, and the Ray job's
    runtime_env that ships its code (the directory as working_dir, its pip packages). A job
    submitted with ``ray job submit --working-dir`` already has its code: then nothing more."""
    code = spec.code
    directory = code_dir({"code": code.model_dump() if code else None}, spec_file, override)
    if code is not None and code.package is not None:
        raise fail("code.package: `optisweep run` ships a directory; give code.path or --code")
    if directory is None and not (code and code.pip):
        return spec, None
    job_env = json.loads(os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR", "{}")).get("runtime_env", {})
    env: dict[str, Any] = {}
    if directory is not None and not job_env.get("working_dir"):
        zip_project(directory, max_bytes=int(MAX_CODE_MB * 2**20))  # the same checks as submit
        env["working_dir"] = str(directory)
        env["excludes"] = list(ALWAYS_LEFT_OUT)  # Ray applies .gitignore files itself
    if code is not None and code.pip:
        env["pip"] = list(code.pip)
    return spec.model_copy(update={"code": None}), env or None
