"""The sweeps table."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, Enum, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from optisweep.service.db.base import Base, UTCDateTime, utcnow

if TYPE_CHECKING:
    from optisweep.service.trials.models import Trial


class SweepStatus(enum.StrEnum):
    """Where a sweep is in its life."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"


class Sweep(Base):
    """A tuning job: its spec as submitted, its status and its trials."""

    __tablename__ = "sweeps"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[SweepStatus] = mapped_column(
        Enum(
            SweepStatus,
            native_enum=False,
            length=16,
            values_callable=lambda e: [m.value for m in e],
        ),
        index=True,
        default=SweepStatus.PENDING,
    )
    num_trials: Mapped[int] = mapped_column(default=0)
    lr_range: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """With ``lr: auto``: per family, the range test's curve and the lr bounds it chose."""
    error: Mapped[str | None] = mapped_column(Text)
    packing: Mapped[str | None] = mapped_column(Text)
    """What packing will not do although it is on, as a worker found when the sweep was
    submitted: why the trials run one per task (the workload cannot be packed), or why their
    packs run under vmap rather than fused; None otherwise."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(64), index=True)
    """The controller running this sweep (the server's, or one ``optisweep run``)."""
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """When that controller last said it is alive; a stale claim may be taken over."""
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    """The project it belongs to: who may see it and who may cancel it."""
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    """Who submitted it (None: ``optisweep run``, or before accounts existed)."""

    trials: Mapped[list[Trial]] = relationship(back_populates="sweep", lazy="raise")
