"""Service settings, read from OPTISWEEP_* environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    allow_code_upload: bool | None = None
    """Accept uploaded code (which runs on the workers): by default only when the server
    listens on a loopback address, as nobody else can reach it then."""
    inspect_timeout_seconds: float = Field(default=300.0, gt=0)
    """How long checking a user's workload on a worker may take (a new runtime_env, with pip
    packages to install, takes a while the first time)."""

    def code_upload_allowed(self) -> bool:
        """Whether this server accepts uploaded code."""
        if self.allow_code_upload is not None:
            return self.allow_code_upload
        from service.code.store import is_loopback

        return is_loopback(self.host)
