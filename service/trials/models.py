"""The trials and metrics tables."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, object_session, relationship

from optisweep.service.db.base import (
    Base,
    FloatKind,
    UTCDateTime,
    decode_float,
    encode_float,
    utcnow,
)
from optisweep.workers.states import TrialState

if TYPE_CHECKING:
    from optisweep.service.sweeps.models import Sweep

__all__ = ["RANKED", "TRIAL_LR", "Trial", "TrialState", "note_status"]

RANKED = (TrialState.COMPLETED, TrialState.STOPPED)
"""Trials that compete on the leaderboard: never DIVERGED or FAILED ones."""
RANKED_WHERE = "status IN ('completed', 'stopped') AND objective_kind = 'finite'"
"""The ranked trials with a finite objective, as SQL (a partial index's predicate)."""


def _enum(cls: type[enum.Enum]) -> Enum:
    return Enum(cls, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e])


class Trial(Base):
    """One configuration of a sweep, trained once (retried on failure)."""

    __tablename__ = "trials"
    __table_args__ = (
        UniqueConstraint("sweep_id", "number"),
        # The dashboard's "best trials of a sweep" queries (curves, parallel coordinates).
        Index("ix_trials_sweep_id_best_objective_value", "sweep_id", "best_objective_value"),
        Index("ix_trials_sweep_id_objective_value", "sweep_id", "objective_value"),
        Index(  # the leaderboard: each family's best
            "ix_trials_sweep_id_optimizer_objective_value",
            "sweep_id",
            "optimizer",
            "objective_value",
        ),
        Index(  # the sweep's best objective: read in order, however many are unfinished
            "ix_trials_ranked",
            "sweep_id",
            "objective_value",
            postgresql_where=text(RANKED_WHERE),
            sqlite_where=text(RANKED_WHERE),
        ),
        Index(  # the dispatcher's next trials: read in order, however many have ended
            "ix_trials_pending",
            "sweep_id",
            "number",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    sweep_id: Mapped[int] = mapped_column(ForeignKey("sweeps.id", ondelete="CASCADE"), index=True)
    number: Mapped[int]
    optimizer: Mapped[str] = mapped_column(String(32), index=True)
    hyperparameters: Mapped[dict[str, Any]] = mapped_column(JSON)
    search_params: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    settings: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """Training settings the sweep searches beside the hyperparameters (``batch_size``,
    ``clip_norm``); None or empty when it searches none."""
    defaults: Mapped[bool] = mapped_column(default=False, server_default=false())
    """A trial of the defaults-first stage (``search.defaults_first``): its family at its
    published defaults, run before the searcher's trials."""
    origin: Mapped[str | None] = mapped_column(String(64))
    """Where a configuration an earlier sweep measured came from (``search.warm_start``):
    ``sweep 5 trial 12``; None for the searcher's own."""
    hyperparameter_history: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    """PBT: each time the trial took another's state, the epoch, that trial's id and the new
    hyperparameters (``hyperparameters`` holds the latest)."""
    """What an adaptive searcher drew for this trial (its own names and scales), kept so a
    restarted controller can rebuild the searcher; None for grid and random search."""
    seed: Mapped[int]
    status: Mapped[TrialState] = mapped_column(_enum(TrialState), index=True)
    attempt: Mapped[int] = mapped_column(default=0)
    pack_id: Mapped[str | None] = mapped_column(String(64))
    objective_value: Mapped[float | None] = mapped_column(Float(precision=53))
    objective_kind: Mapped[FloatKind | None] = mapped_column(_enum(FloatKind))
    best_objective_value: Mapped[float | None] = mapped_column(Float(precision=53))
    best_objective_kind: Mapped[FloatKind | None] = mapped_column(_enum(FloatKind))
    error: Mapped[str | None] = mapped_column(Text)
    node_id: Mapped[str | None] = mapped_column(String(64))
    """The Ray node that ran the last attempt."""
    device: Mapped[str | None] = mapped_column(String(32))
    """The torch device the last attempt trained on (cpu, cuda:0, ...)."""
    epochs_run: Mapped[int] = mapped_column(default=0, server_default="0")
    """Epochs the trial has recorded (what it spent of the sweep's budget)."""
    checkpoint_path: Mapped[str | None] = mapped_column(String(1024))
    """The trial's latest checkpoint file (model and optimizer state), if one was written."""
    checkpoint_epoch: Mapped[int | None]
    """The epoch that checkpoint was taken after."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    sweep: Mapped[Sweep] = relationship(back_populates="trials", lazy="raise")

    @property
    def objective(self) -> float | None:
        """The objective metric's final value (NaN and inf come back as such)."""
        return decode_float(self.objective_value, self.objective_kind)

    @objective.setter
    def objective(self, value: float | None) -> None:
        self.objective_value, self.objective_kind = encode_float(value)

    @property
    def best_objective(self) -> float | None:
        """The best value the objective metric reached in any epoch."""
        return decode_float(self.best_objective_value, self.best_objective_kind)

    @best_objective.setter
    def best_objective(self, value: float | None) -> None:
        self.best_objective_value, self.best_objective_kind = encode_float(value)


class FamilyTally(Base):
    """Per sweep and optimizer family: the epochs its trials have run so far and its best
    objective, kept as reports arrive (so best-so-far charts read a few rows at any size)."""

    __tablename__ = "family_tallies"

    sweep_id: Mapped[int] = mapped_column(
        ForeignKey("sweeps.id", ondelete="CASCADE"), primary_key=True
    )
    optimizer: Mapped[str] = mapped_column(String(32), primary_key=True)
    epochs_spent: Mapped[int] = mapped_column(default=0)
    best_value: Mapped[float | None] = mapped_column(Float(precision=53))
    best_trial_id: Mapped[int | None]


class StatusTally(Base):
    """How many of a sweep's trials of one family are in a status, with a finite objective or
    not (``finite``: a completed or stopped one ranks), as of the controller's last fold of
    the ``status_deltas`` (``tallies`` adds the deltas since)."""

    __tablename__ = "status_tallies"

    sweep_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    optimizer: Mapped[str] = mapped_column(String(32), primary_key=True)
    status: Mapped[TrialState] = mapped_column(_enum(TrialState), primary_key=True)
    finite: Mapped[bool] = mapped_column(primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)


class StatusDelta(Base):
    """A change in how many of a sweep's trials are in a status (by family, finite objective
    or not): written by the database's own triggers on ``trials`` (every insert, change of
    status or objective kind, and delete, whoever makes it), folded into ``status_tallies``
    by the controller. No foreign key: a sweep deleted with its trials leaves the deltas of
    their deletion."""

    __tablename__ = "status_deltas"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    sweep_id: Mapped[int]
    optimizer: Mapped[str] = mapped_column(String(32))
    status: Mapped[TrialState] = mapped_column(_enum(TrialState))
    finite: Mapped[bool]
    delta: Mapped[int] = mapped_column(BigInteger)


class FamilyImprovement(Base):
    """A point where a family's best objective improved: after ``epochs_spent`` epochs of its
    trials (in the order they were reported), trial ``trial_id`` reached ``value``."""

    __tablename__ = "family_improvements"
    __table_args__ = (
        Index("ix_family_improvements_sweep_optimizer", "sweep_id", "optimizer", "epochs_spent"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    sweep_id: Mapped[int] = mapped_column(ForeignKey("sweeps.id", ondelete="CASCADE"))
    optimizer: Mapped[str] = mapped_column(String(32))
    epochs_spent: Mapped[int]
    value: Mapped[float] = mapped_column(Float(precision=53))
    trial_id: Mapped[int]
    epoch: Mapped[int]


TRIAL_LR = Trial.hyperparameters["lr"].as_float()
"""A trial's lr, read in SQL through its hyperparameters' JSON path (NULL where it has none):
the columns a large sweep's charts and report read instead of every trial's JSON."""


class TrialEvent(Base):
    """One change of a trial's status (started, finished, retried, interrupted, cancelled)."""

    __tablename__ = "trial_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[TrialState] = mapped_column(_enum(TrialState))
    """The status the trial moved to."""
    attempt: Mapped[int]
    detail: Mapped[str | None] = mapped_column(Text)
    """Where it started, or why it ended or starts again."""


def note_status(trial: Trial, detail: str | None = None, *, at: datetime | None = None) -> None:
    """Record the trial's current status (and attempt) in its history, in the trial's session."""
    session = object_session(trial)
    assert session is not None, "a trial's history is written with the trial"
    session.add(
        TrialEvent(
            trial_id=trial.id,
            at=at or utcnow(),
            status=trial.status,
            attempt=trial.attempt,
            detail=detail,
        )
    )


class Metric(Base):
    """One metric of one trial at one epoch; unique, so a replayed write is a no-op."""

    __tablename__ = "metrics"
    __table_args__ = (
        # Unique (a replayed report is a no-op) and, on PostgreSQL, covering: a trial's curve is
        # read from the index alone, however its rows are scattered among other trials' rows.
        Index(
            "ix_metrics_curve",
            "trial_id",
            "name",
            "step",
            unique=True,
            postgresql_include=["value_finite", "value_kind"],
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    step: Mapped[int]
    value_finite: Mapped[float | None] = mapped_column(Float(precision=53))
    value_kind: Mapped[FloatKind] = mapped_column(_enum(FloatKind))

    @property
    def value(self) -> float:
        """The stored value, NaN and inf included."""
        decoded = decode_float(self.value_finite, self.value_kind)
        assert decoded is not None  # value_kind is never NULL
        return decoded
