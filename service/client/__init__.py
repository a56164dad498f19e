"""The optisweep REST API from Python (also ``import optisweep``): Client, Sweep, records."""

from optisweep.service.client.api import DEFAULT_URL, Client, default_token
from optisweep.service.client.comparisons import Comparison
from optisweep.service.client.errors import (
    ConflictError,
    FieldError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    NotSignedInError,
    OptisweepError,
    RateLimitedError,
    ServerError,
    ServerUnreachableError,
    TooLargeError,
)
from optisweep.service.client.records import (
    FamilyReport,
    Leaderboard,
    LeaderboardEntry,
    MetricPoint,
    Objective,
    ParetoPoint,
    Records,
    Report,
    SweepInfo,
    Trial,
)
from optisweep.service.client.sweep import Sweep

__all__ = [
    "DEFAULT_URL",
    "Client",
    "Comparison",
    "ConflictError",
    "FamilyReport",
    "FieldError",
    "ForbiddenError",
    "InvalidInputError",
    "Leaderboard",
    "LeaderboardEntry",
    "MetricPoint",
    "NotFoundError",
    "NotSignedInError",
    "Objective",
    "OptisweepError",
    "ParetoPoint",
    "RateLimitedError",
    "Records",
    "Report",
    "ServerError",
    "ServerUnreachableError",
    "Sweep",
    "SweepInfo",
    "TooLargeError",
    "Trial",
    "default_token",
]
