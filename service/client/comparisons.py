"""A comparison of several sweeps as the client returns it (GET /comparisons)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from optisweep.service.client.records import Record, Records

if TYPE_CHECKING:
    import pandas


class ComparedSweep(Record):
    """One sweep of the comparison: the metric and target it is measured on."""

    sweep_id: int
    name: str
    workload: str
    metric: str
    mode: str
    epoch: str = "last"
    """Which epoch's value a trial's objective is on this sweep ("last" or "best")."""
    target: float | None = None
    target_rule: str
    timed: bool
    packed: bool


class FamilyResult(Record):
    """One optimizer family on one sweep: its best, its time to the target, its tuning cost."""

    sweep_id: int
    optimizer: str
    trials: int
    best_objective: float | None = None
    reached: int
    epochs_to_target: int | None = None
    seconds_to_target: float | None = None
    fastest_trial: int | None = None
    ratio: float | None = None
    tuning_trials: int | None = None


class Profile(Record):
    """A family's performance profile: its share of sweeps within tau of the fastest."""

    optimizer: str
    shares: list[float]
    area: float


class Comparison(Record):
    """Several sweeps side by side; ``to_pandas()`` is the per-sweep, per-family table."""

    sweeps: list[ComparedSweep]
    measure: Literal["seconds", "epochs"]
    tolerance: float
    results: list[FamilyResult]
    taus: list[float]
    profiles: list[Profile]
    notes: list[str]

    def to_pandas(self) -> pandas.DataFrame:
        """One row per sweep and family, with the sweep's workload, metric and target."""
        by_id = {sweep.sweep_id: sweep for sweep in self.sweeps}
        rows: Records[_Row] = Records(
            _Row(**by_id[r.sweep_id].model_dump(include=_SWEEP_COLUMNS), **r.model_dump())
            for r in self.results
        )
        return rows.to_pandas()

    def profiles_frame(self) -> pandas.DataFrame:
        """The profiles as a table: one row per tau, one column per family."""
        rows: Records[_Point] = Records(
            _Point(tau=tau, **{p.optimizer: p.shares[i] for p in self.profiles})
            for i, tau in enumerate(self.taus)
        )
        return rows.to_pandas().set_index("tau")


_SWEEP_COLUMNS = {"workload", "metric", "target"}


class _Row(FamilyResult):
    workload: str
    metric: str
    target: float | None


class _Point(Record, extra="allow"):
    tau: float

    def row(self) -> dict[str, Any]:
        """Tau and each family's share."""
        return {"tau": self.tau, **(self.model_extra or {})}
