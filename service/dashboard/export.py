"""A sweep's trials as CSV, streamed in batches (100,000 trials in seconds)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import String, select, type_coerce

from optisweep.service.dashboard import queries
from optisweep.service.db.base import decode_float
from optisweep.service.deps import SessionDep
from optisweep.service.routing import NOT_FOUND, StrictRoute
from optisweep.service.sweeps.repository import get_sweep, stored_spec
from optisweep.service.trials.models import Trial

router = APIRouter(prefix="/sweeps", tags=["dashboard"], route_class=StrictRoute)

CSV_COLUMNS = [
    "id", "number", "optimizer", "status", "objective", "objective_epoch", "best_objective",
    "epochs_run",
    "attempt", "seed", "lr", "beta1", "beta2", "batch_size", "clip_norm", "schedule",
    "hyperparameters", "settings", "origin", "pack_id", "device",
    "started_at", "finished_at", "error",
]  # fmt: skip


CSV_BATCH = 5000
"""Trials read per query while the CSV streams (keyset pagination on the trial number)."""


@router.get(
    "/{sweep_id}/trials.csv",
    response_class=StreamingResponse,
    responses={**NOT_FOUND, 200: {"content": {"text/csv": {}}, "description": "The trials."}},
)
def trials_csv(sweep_id: int, session: SessionDep, request: Request) -> StreamingResponse:
    """Every trial of the sweep as CSV (one row per trial, hyperparameters and settings as
    JSON, a warm start's origin), streamed."""
    epoch = stored_spec(get_sweep(session, sweep_id)).objective.summary  # names "objective"
    sessions = request.app.state.sessions
    t = Trial.__table__.c
    columns = [
        t.id, t.number, t.optimizer, type_coerce(t.status, String), t.objective_value,
        t.objective_kind, t.best_objective_value, t.best_objective_kind, t.epochs_run,
        t.attempt, t.seed, t.hyperparameters, t.settings, t.origin, t.pack_id, t.device,
        t.started_at, t.finished_at, t.error,
    ]  # fmt: skip

    def rows() -> Iterator[str]:
        # Plain Core rows in batches, each from its own short transaction: 100,000 trials
        # stream in seconds without holding them all, or a connection, for the download.
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_COLUMNS)
        last = -1
        while True:
            with sessions() as batch_session:
                batch = (
                    batch_session.connection()
                    .execute(
                        select(*columns)
                        .where(t.sweep_id == sweep_id, t.number > last)
                        .order_by(t.number)
                        .limit(CSV_BATCH)
                    )
                    .all()
                )
            for row in batch:
                (
                    trial_id, number, optimizer, status, objective, objective_kind, best,
                    best_kind, epochs_run, attempt, seed, hyperparameters, settings, origin,
                    pack_id, device, started_at, finished_at, error,
                ) = row  # fmt: skip
                settings = settings or {}
                beta1, beta2 = queries.betas(optimizer, hyperparameters)
                writer.writerow(
                    [
                        trial_id, number, optimizer, status,
                        decode_float(objective, objective_kind), epoch,
                        decode_float(best, best_kind),
                        epochs_run, attempt, seed,
                        hyperparameters.get("lr"), beta1, beta2,
                        settings.get("batch_size"), settings.get("clip_norm"),
                        json.dumps(settings["schedule"], sort_keys=True)
                        if "schedule" in settings else "",
                        json.dumps(hyperparameters, sort_keys=True),
                        json.dumps(settings, sort_keys=True) if settings else "", origin or "",
                        pack_id, device, started_at, finished_at, error,
                    ]
                )  # fmt: skip
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            if len(batch) < CSV_BATCH:
                return
            last = batch[-1][1]

    filename = f"sweep-{sweep_id}-trials.csv"
    return StreamingResponse(
        rows(),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
