"""``Client``: the optisweep REST API from Python, typed; the CLI is built on it."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

from optisweep.service.accounts.tokens import read_token_file, token_file
from optisweep.service.client.accounts import (
    Me,
    Member,
    NewToken,
    NewUser,
    ProjectInfo,
    TokenInfo,
    UserInfo,
)
from optisweep.service.client.code import MAX_CODE_MB, code_dir, with_package, zip_project
from optisweep.service.client.comparisons import Comparison
from optisweep.service.client.errors import (
    FieldError,
    InvalidInputError,
    ServerUnreachableError,
    error_for,
    field_errors,
)
from optisweep.service.client.records import CodeUpload, Records, SweepInfo
from optisweep.service.client.sweep import Sweep
from optisweep.service.errors import InputError
from optisweep.service.yaml_spec import load_spec_text

API = "/api/v1"
DEFAULT_URL = "http://127.0.0.1:8000"


def default_token() -> str | None:
    """The token a client signs in with by default: OPTISWEEP_TOKEN, else the token file
    (``optisweep login`` and a server's first start write it)."""
    return os.environ.get("OPTISWEEP_TOKEN") or read_token_file(token_file())


class Client:
    """A connection to one optisweep server.

    ``url`` defaults to OPTISWEEP_URL, else http://127.0.0.1:8000; ``token`` to
    OPTISWEEP_TOKEN, else the CLI's token file. Errors are OptisweepError subclasses
    (InvalidInputError names the field a 422 refused).
    """

    def __init__(
        self, url: str | None = None, token: str | None = None, *, timeout: float = 30.0
    ) -> None:
        self.url = (url or os.environ.get("OPTISWEEP_URL") or DEFAULT_URL).rstrip("/")
        token = token or default_token()
        headers = {"Authorization": f"Bearer {token.strip()}"} if token else {}
        self._http = httpx.Client(base_url=self.url + API, timeout=timeout, headers=headers)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request under /api/v1; its response when it succeeded, else the OptisweepError
        it stands for."""
        params = kwargs.pop("params", None)
        if params is not None:
            kwargs["params"] = {k: v for k, v in params.items() if v is not None}
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ServerUnreachableError(
                f"no optisweep server answers at {self.url} ({type(exc).__name__}); "
                "start one with `optisweep serve` or `make run`"
            ) from None
        if response.is_error:
            raise error_for(response)
        return response

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """One request under /api/v1; its JSON answer."""
        return self.send(method, path, **kwargs).json()

    def pages(self, path: str, *, limit: int | None = None, **params: Any) -> Iterator[Any]:
        """Every item of a paged listing (following ``next_cursor``), ``limit`` at most."""
        cursor, left = None, limit
        while left is None or left > 0:
            page_size = min(left, 1000) if left is not None else 1000
            page = self.request(
                "GET", path, params={**params, "limit": page_size, "cursor": cursor}
            )
            yield from page["items"][:left]
            if left is not None:
                left -= len(page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                return

    # Sweeps

    def submit(
        self,
        spec: Mapping[str, Any] | str | os.PathLike[str],
        *,
        code: str | os.PathLike[str] | None = None,
        project: str | None = None,
        max_code_mb: float = MAX_CODE_MB,
        warm_start: Sequence[int] | None = None,
    ) -> Sweep:
        """Submit a sweep: a spec as a dict, or the path of a YAML or JSON file. A spec with
        ``code: {path: DIR}`` (relative to its file), or ``code=DIR``, ships that project to
        the workers first (zipped as .gitignore leaves it, uploaded once by hash).
        ``warm_start``: earlier sweeps' ids its searcher learns from first (the spec's
        ``search.warm_start``)."""
        body, base = _spec_body(spec)
        if warm_start:
            search = {**body.get("search", {}), "warm_start": {"sweeps": list(warm_start)}}
            body = {**body, "search": search}
        directory = code_dir(body, base, Path(code) if code is not None else None)
        upload = None
        if directory is not None:
            upload = self.upload_code(directory, project=project, max_code_mb=max_code_mb)
            body = with_package(body, upload.package)
        # A user's workload is checked on a worker before the answer: allow for a cold start.
        answer = self.request(
            "POST", "/sweeps", json=body, params={"project": project}, timeout=600
        )
        return Sweep(self, SweepInfo.model_validate(answer), code=upload)

    def sweep(self, sweep_id: int) -> Sweep:
        """The sweep with this id."""
        return Sweep(self, SweepInfo.model_validate(self.request("GET", f"/sweeps/{sweep_id}")))

    def sweeps(self, *, project: str | None = None, limit: int | None = None) -> Records[SweepInfo]:
        """Sweeps of your projects (or of one), newest first; ``limit`` at most."""
        items = self.pages("/sweeps", limit=limit, project=project)
        return Records(SweepInfo.model_validate(item) for item in items)

    def upload_code(
        self,
        directory: str | os.PathLike[str],
        *,
        project: str | None = None,
        max_code_mb: float = MAX_CODE_MB,
    ) -> CodeUpload:
        """Zip and upload a project directory; the package a spec's ``code.package`` names."""
        root = Path(directory).expanduser().resolve()
        data, files = zip_project(root, max_bytes=int(max_code_mb * 2**20))
        response = self.send(
            "POST",
            "/code",
            content=data,
            headers={"Content-Type": "application/octet-stream"},
            params={"project": project},
            timeout=300,
        )
        return CodeUpload(
            package=response.json()["package"],
            directory=str(root),
            files=files,
            bytes=len(data),
            existed=response.status_code == 200,
        )

    def compare(
        self,
        sweeps: list[int] | list[Sweep],
        *,
        target: str | list[str] | None = None,
        fraction: float = 0.95,
        tolerance: float = 0.02,
        measure: str = "auto",
    ) -> Comparison:
        """Several sweeps (workloads) side by side: per family its best, epochs and seconds to
        ``target`` (``val_accuracy>=0.95``; default: ``fraction`` of the way from the first
        epoch to the best reached), its tuning cost, and its performance profile."""
        ids = ",".join(str(s.id if isinstance(s, Sweep) else s) for s in sweeps)
        targets = [target] if isinstance(target, str) else target
        params = {
            "sweeps": ids,
            "target": targets,
            "fraction": fraction,
            "tolerance": tolerance,
            "measure": measure,
        }
        return Comparison.model_validate(self.request("GET", "/comparisons", params=params))

    # Accounts

    def me(self) -> Me:
        """Who this client is signed in as, with their projects."""
        return Me.model_validate(self.request("GET", "/me"))

    def tokens(self) -> Records[TokenInfo]:
        """Your tokens (never their secrets)."""
        return Records(TokenInfo.model_validate(t) for t in self.request("GET", "/tokens"))

    def create_token(self, name: str = "cli", *, days: int = 90) -> NewToken:
        """A new token for yourself; its secret is in the answer only."""
        body = {"name": name, "days": days}
        return NewToken.model_validate(self.request("POST", "/tokens", json=body))

    def revoke_token(self, token_id: int) -> TokenInfo:
        """Revoke one of your tokens."""
        return TokenInfo.model_validate(self.request("DELETE", f"/tokens/{token_id}"))

    def projects(self) -> Records[ProjectInfo]:
        """The projects you are in, with your role."""
        return Records(ProjectInfo.model_validate(p) for p in self.request("GET", "/projects"))

    def create_project(self, name: str, *, owner: str | None = None) -> ProjectInfo:
        """Create a project (admins)."""
        body = {"name": name, "owner": owner}
        return ProjectInfo.model_validate(self.request("POST", "/projects", json=body))

    def set_member(self, project: str, user: str, *, role: str = "member") -> Member:
        """Give a user a role in a project (its owners and admins)."""
        path = f"/projects/{project}/members/{user}"
        return Member.model_validate(self.request("PUT", path, json={"role": role}))

    def users(self) -> Records[UserInfo]:
        """Every user (admins)."""
        return Records(UserInfo.model_validate(u) for u in self.request("GET", "/users"))

    def create_user(self, name: str, *, admin: bool = False) -> NewUser:
        """Create a user (admins); their first token is in the answer only."""
        body = {"name": name, "is_admin": admin}
        return NewUser.model_validate(self.request("POST", "/users", json=body))


def _spec_body(spec: Mapping[str, Any] | str | os.PathLike[str]) -> tuple[dict[str, Any], Path]:
    """The spec as a JSON body, and the folder its ``code.path`` is relative to."""
    if isinstance(spec, Mapping):
        return dict(spec), Path.cwd()
    path = Path(spec).expanduser()
    return read_spec_file(path), path.resolve().parent


def read_spec_file(path: Path) -> dict[str, Any]:
    """A sweep spec file (YAML or JSON) as a dict; InvalidInputError naming the file (and the
    field, for a spec that is no mapping) when it cannot be read."""
    where = f"spec {str(path)!r}: "
    try:
        return load_spec_text(path.read_text())
    except OSError as exc:
        problem = [FieldError("", exc.strerror or str(exc))]
    except UnicodeDecodeError:
        problem = [FieldError("", "not UTF-8 text")]
    except InputError as exc:
        problem = field_errors([{"loc": exc.loc, "msg": str(exc)}])
    raise InvalidInputError(problem, status_code=None, prefix=where)
