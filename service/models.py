"""Every ORM model, imported in one place so Base.metadata knows all tables."""

from service.sweeps.models import Sweep, SweepStatus
from service.trials.models import Metric, Trial, TrialStatus

__all__ = ["Metric", "Sweep", "SweepStatus", "Trial", "TrialStatus"]
