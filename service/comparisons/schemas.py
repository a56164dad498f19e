"""What GET /comparisons answers: per workload and family, time to a target; per family, its
performance profile."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

Measure = Literal["seconds", "epochs"]
"""What "fastest" counts: wall-clock seconds of training, or epochs."""


class Read(BaseModel):
    """Base of the comparison's parts: NaN and inf written as "NaN" / "Infinity"."""

    model_config = ConfigDict(ser_json_inf_nan="strings")


class ComparedSweep(Read):
    """One sweep of the comparison (one workload): the metric and target it is measured on."""

    sweep_id: int
    name: str
    workload: str
    metric: str
    mode: Literal["max", "min"]
    epoch: Literal["last", "best"] = "last"
    """Which epoch's value a trial's objective is on this sweep (its ``objective.summary``):
    the families' ``best_objective`` is their best trial's by that rule."""
    target: float | None
    """The value a trial must reach (>= for max, <= for min) on ``metric``; None while no
    trial has reported a finite value of it."""
    target_rule: str
    """How the target was set, in words."""
    timed: bool
    """Its trials recorded ``time_seconds`` (sweeps from before it was recorded did not)."""
    packed: bool
    """Some of its trials trained in packs: their seconds are their pack's time, shared."""


class FamilyResult(Read):
    """One optimizer family on one sweep."""

    sweep_id: int
    optimizer: str
    trials: int
    """The family's trials in the sweep."""
    best_objective: float | None
    """Its best trial's objective, by the sweep's summary rule (``epoch``), as the leaderboard
    and the report rank it (completed and stopped trials)."""
    reached: int
    """How many of its trials reached the target."""
    epochs_to_target: int | None
    """The fewest epochs one of its trials took to reach the target."""
    seconds_to_target: float | None
    """The fewest seconds of training one of its trials took to reach it."""
    fastest_trial: int | None
    """The number of the trial that reached it fastest (by the comparison's measure)."""
    ratio: float | None
    """Its time to target over the fastest family's on this sweep (1: the fastest); None if
    it never reached the target."""
    tuning_trials: int | None
    """Trials it took, in the order the sweep ran them, until the family's best so far was
    within the tolerance of its final best: what tuning it cost."""


class Profile(Read):
    """A family's performance profile: for each tau, the share of the sweeps on which its time
    to target was within tau times the fastest family's (Dolan and More 2002)."""

    optimizer: str
    shares: list[float]
    """One share per ``Comparison.taus``."""
    area: float
    """The profile's area over tau from 1 to the last tau, normalised to [0, 1] (1: the
    fastest on every sweep), as MLCommons AlgoPerf scores optimizers."""


class Comparison(Read):
    """Several sweeps side by side."""

    sweeps: list[ComparedSweep]
    measure: Measure
    tolerance: float
    results: list[FamilyResult]
    """Per sweep (in the order asked), its families fastest first."""
    taus: list[float]
    profiles: list[Profile]
    """Best area first."""
    notes: list[str]
    """What a reader should know: shared pack times, sweeps without times, absent families."""
