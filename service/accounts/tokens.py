"""API tokens: random, shown once, stored as their SHA-256 only, and where the CLI keeps one.

A token carries 256 random bits (``secrets``), so a fast hash is the right one: nothing can
be guessed from it, and looking a token up by its hash compares nothing secret byte by byte.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

PREFIX = "osw_"
"""Every token starts with this, so a leaked one is recognisable (secret scanners, logs)."""

DEFAULT_TOKEN_FILE = Path("~/.config/optisweep/token")


def new_token() -> str:
    """A fresh token: the prefix and 43 URL-safe characters (256 random bits)."""
    return PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What the database keeps of a token."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def shown_prefix(token: str) -> str:
    """The part of a token that lists show: the prefix and four characters."""
    return token[: len(PREFIX) + 4]


def token_file(configured: str | None = None) -> Path:
    """Where the CLI and a first-starting server keep a token: ``OPTISWEEP_TOKEN_FILE``, else
    ``~/.config/optisweep/token``."""
    return Path(
        configured or os.environ.get("OPTISWEEP_TOKEN_FILE") or DEFAULT_TOKEN_FILE
    ).expanduser()


def write_token_file(path: Path, token: str) -> None:
    """Write ``token`` to ``path`` readable by its owner only (0600, in a 0700 folder)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(token + "\n")
    os.chmod(path, 0o600)  # an existing file keeps its mode through O_TRUNC


def read_token_file(path: Path) -> str | None:
    """The token in ``path``, or None if there is none."""
    try:
        text = path.read_text().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return text or None
