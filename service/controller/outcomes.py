"""How a trial ended, as searchers, schedulers and the inbox actor say it (a light module: the
inbox actor's process imports it at start, and should not wait for torch)."""

from typing import Literal

Outcome = Literal["completed", "stopped", "diverged", "failed"]
"""How a trial ended, as searchers are told."""
