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
