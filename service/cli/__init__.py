"""The optisweep command line: serve, submit, status, trials, cancel, run, db upgrade."""

from service.cli import client, local
from service.cli.common import app, format_errors, leaderboard_table

__all__ = ["app", "client", "format_errors", "leaderboard_table", "local"]
