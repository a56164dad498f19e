"""The optisweep REST API from Python (also ``import optisweep``): Client, Sweep, records."""

from service.client.api import DEFAULT_URL, Client, default_token
from service.client.comparisons import Comparison
from service.client.errors import (
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
from service.client.records import (
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
from service.client.sweep import Sweep

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
