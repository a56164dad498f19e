"""Tune an unmodified LightningModule: ``lightning_workload`` (needs ``optisweep[lightning]``)."""

from optisweep.workers.integrations.lightning import lightning_workload

__all__ = ["lightning_workload"]
