"""Service settings, read from OPTISWEEP_* environment variables."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """Where the database and Ray are, and the service's limits."""

    model_config = SettingsConfigDict(env_prefix="OPTISWEEP_")

    database_url: str = "sqlite:///optisweep.db"
    ray_address: str | None = None
    max_trials: int = Field(default=10_000, ge=1)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65_535)
    claim_lease_seconds: float = Field(default=30.0, gt=0)
    """How long a controller's claim on a sweep outlives its last heartbeat."""
    pack_memory_mb: float = Field(default=2048.0, gt=0)
    """The most memory one pack may use (parameters, gradients, optimizer state, activations)."""
    max_request_bytes: int = Field(default=1_048_576, ge=1)
    """The largest request body the API reads; a larger one is a 413, refused while reading."""
    checkpoint_dir: str = "optisweep-checkpoints"
    """Where trials' checkpoints go (one file per trial; on a cluster, storage every node
    mounts at this path). Relative paths are taken from the server's working directory; empty
    turns checkpoints off."""
    debug: bool = False
    """Debugging routes (``/api/v1/debug/modules``: what the server process imported)."""
    code_dir: str = "optisweep-code"
    """Where uploaded code packages are stored, one zip per content hash (Ray ships them to
    the workers itself). Relative paths are taken from the server's working directory."""
    max_code_bytes: int = Field(default=50 * 2**20, ge=1)
    """The largest code package ``POST /api/v1/code`` accepts (a larger one is a 413)."""
    token_file: str | None = None
    """Where a first start writes the admin's token (and the CLI reads one):
    ``~/.config/optisweep/token`` by default."""
    secret_key: str | None = None
    """Signs the dashboard's session cookies; by default made once and kept beside the token
    file. Servers behind one address share one: set it."""
    secure_cookies: bool = False
    """Send the session cookie over HTTPS only: set it behind a TLS-terminating proxy."""
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Host headers the server answers (comma-separated; '*' for any): by default its
    loopback names. A request for any other host is a 400 (DNS rebinding)."""
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Origins whose pages may call the API from a browser (comma-separated); none by
    default."""
    rate_limit: str = "1200/minute"
    """Requests per token, as the ``limits`` library writes them ("100/second", ...)."""
    rate_limit_anonymous: str = "120/minute"
    """Requests per client address without a valid token (sign-in, health checks, 401s)."""
    inspect_timeout_seconds: float = Field(default=300.0, gt=0)
    """How long checking a user's workload on a worker may take (a new runtime_env, with pip
    packages to install, takes a while the first time)."""

    @field_validator("allowed_hosts", "cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("rate_limit", "rate_limit_anonymous")
    @classmethod
    def _a_rate(cls, value: str) -> str:
        from limits import parse

        try:
            parse(value)
        except ValueError:
            raise ValueError(f"not a rate like '100/minute': {value!r}") from None
        return value
