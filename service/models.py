"""Every ORM model, imported in one place so Base.metadata knows all tables."""

from optisweep.service.accounts.models import (
    ApiToken,
    AuditEvent,
    CodePackage,
    IdempotencyRecord,
    Membership,
    Project,
    Role,
    User,
)
from optisweep.service.sweeps.models import Sweep, SweepStatus
from optisweep.service.trials.models import (
    FamilyImprovement,
    FamilyTally,
    Metric,
    StatusDelta,
    StatusTally,
    Trial,
    TrialEvent,
    TrialState,
)

__all__ = [
    "ApiToken",
    "AuditEvent",
    "CodePackage",
    "FamilyImprovement",
    "FamilyTally",
    "IdempotencyRecord",
    "Membership",
    "Metric",
    "Project",
    "Role",
    "StatusDelta",
    "StatusTally",
    "Sweep",
    "SweepStatus",
    "Trial",
    "TrialEvent",
    "TrialState",
    "User",
]
