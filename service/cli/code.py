"""The CLI's options for shipping a user's project, and how ``optisweep run`` hands it to Ray as
the job's working directory (``optisweep submit`` uploads it through the client)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from optisweep.service.cli.common import console, fail
from optisweep.service.client import OptisweepError
from optisweep.service.client.code import ALWAYS_LEFT_OUT, MAX_CODE_MB, code_dir, zip_project
from optisweep.service.client.records import CodeUpload

if TYPE_CHECKING:
    from optisweep.service.sweeps.schemas import SweepCreate

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


def print_upload(upload: CodeUpload) -> None:
    """One line on the package a submit uploaded."""
    again = " (already there)" if upload.existed else ""
    console.print(
        f"code: {Path(upload.directory).name}/ as package {upload.package[:12]}, "
        f"{upload.files} files, {upload.bytes / 1024:.0f} kB{again}"
    )


def job_code(
    spec: SweepCreate, spec_file: Path, override: Path | None
) -> tuple[SweepCreate, dict[str, Any] | None]:
    """For ``optisweep run``: the spec as its controller runs it, and the Ray job's
    runtime_env that ships its code (the directory as working_dir, its pip packages). A job
    submitted with ``ray job submit --working-dir`` already has its code: then nothing more."""
    code = spec.code
    spec_code = {"code": code.model_dump() if code else None}
    directory = code_dir(spec_code, spec_file.resolve().parent, override)
    if code is not None and code.package is not None:
        raise fail("code.package: `optisweep run` ships a directory; give code.path or --code")
    if directory is None and not (code and code.pip):
        return spec, None
    job_env = json.loads(os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR", "{}")).get("runtime_env", {})
    env: dict[str, Any] = {}
    if directory is not None and not job_env.get("working_dir"):
        try:  # the same checks as submit
            zip_project(directory, max_bytes=int(MAX_CODE_MB * 2**20))
        except OptisweepError as exc:
            raise fail(str(exc), code=exc.exit_code) from None
        env["working_dir"] = str(directory)
        env["excludes"] = list(ALWAYS_LEFT_OUT)  # Ray applies .gitignore files itself
    if code is not None and code.pip:
        env["pip"] = list(code.pip)
    return spec.model_copy(update={"code": None}), env or None
