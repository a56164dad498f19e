"""Every ORM model, imported in one place so Base.metadata knows all tables."""

from service.sweeps.models import Sweep, SweepStatus
from service.trials.models import (
    FamilyImprovement,
    FamilyTally,
    Metric,
    Trial,
    TrialEvent,
    TrialStatus,
)

__all__ = [
    "FamilyImprovement",
    "FamilyTally",
    "Metric",
    "Sweep",
    "SweepStatus",
    "Trial",
    "TrialEvent",
    "TrialStatus",
]
