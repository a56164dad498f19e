"""The optisweep command line: serve, submit, status, trials, report, cancel, compare, run,
db upgrade; login, whoami, token, project and user."""

from optisweep.service.cli import accounts, client, compare, local
from optisweep.service.cli.common import app, format_errors, leaderboard_table

__all__ = [
    "accounts",
    "app",
    "client",
    "compare",
    "format_errors",
    "leaderboard_table",
    "local",
]
