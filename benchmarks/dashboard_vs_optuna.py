"""How much sooner does the sweep page have its data than optuna-dashboard's study page?

The same synthetic sweep (N trials x 100 epochs, seven families, as benchmarks/dashboard_queries
.py makes it) is loaded into PostgreSQL twice: as an optisweep sweep, and as an Optuna study in
Optuna's own RDB schema (its trials, params, values and intermediate values copied with SQL into
a schema of the same database). Then, for each size:

- optisweep: every request the sweep page makes when it opens (sweep, leaderboard, trial table,
  curves, lr sensitivity, best so far, parallel coordinates, importance), one after another,
  against the API under uvicorn; the sum is what a browser would wait for if it asked serially.
- optuna-dashboard: GET /api/studies/{id}, the one request its study page makes when it opens
  (every trial with every intermediate value), against a fresh ``optuna_dashboard.wsgi`` app
  (its in-memory cache is cold, as for a user opening the page) under wsgiref.

Each is repeated; the table shows the medians, the bytes sent and the ratio.

Run: ``.venv/bin/python -m benchmarks.dashboard_vs_optuna [--sizes 1000 10000]``
(needs the ``bench`` extra: optuna-dashboard).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import threading
import time
import uuid
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import httpx
import psycopg

from benchmarks.dashboard_queries import FAMILIES, load, serve
from optisweep.service.db.migrate import upgrade_engine
from optisweep.service.db.session import make_engine

PAGE_REQUESTS = [
    "/sweeps/{id}",
    "/sweeps/{id}/leaderboard",
    "/sweeps/{id}/trials?limit=500&sort=best_objective",
    "/sweeps/{id}/curves?max_points=200&limit=300",
    "/sweeps/{id}/lr-sensitivity?max_points=500",
    "/sweeps/{id}/best-so-far",
    "/sweeps/{id}/parallel?limit=1000",
    "/sweeps/{id}/importance",
]
"""What service/dashboard/static/sweep.html fetches when it opens."""


def copy_to_optuna(url: str, sweep_id: int) -> int:
    """Copy the sweep into an Optuna study (Optuna's schema ``optuna``); the study's id. One
    function on purpose: it maps our tables onto Optuna's, table by table, in one session."""
    import optuna
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        distribution_to_json,
    )

    with psycopg.connect(url, autocommit=True) as db:
        db.execute("CREATE SCHEMA IF NOT EXISTS optuna")
    storage_url = url.replace("postgresql://", "postgresql+psycopg://")
    storage = optuna.storages.RDBStorage(
        storage_url, engine_kwargs={"connect_args": {"options": "-csearch_path=optuna"}}
    )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        storage=storage, study_name=f"sweep-{sweep_id}", direction="maximize"
    )
    study_id = study._study_id
    lr = distribution_to_json(FloatDistribution(1e-4, 1e-1, log=True))
    beta1 = distribution_to_json(FloatDistribution(0.8, 0.99))
    beta2 = distribution_to_json(FloatDistribution(0.9, 0.9999))
    family = distribution_to_json(CategoricalDistribution(FAMILIES))
    families = "ARRAY[" + ",".join(f"'{f}'" for f in FAMILIES) + "]"
    with psycopg.connect(url, autocommit=True) as db:
        db.execute(
            """
            INSERT INTO optuna.trials (trial_id, number, study_id, state, datetime_start,
                datetime_complete)
            SELECT id, number, %s, 'COMPLETE', created_at, finished_at
            FROM public.trials WHERE sweep_id = %s
            """,
            (study_id, sweep_id),
        )
        db.execute(
            f"""
            INSERT INTO optuna.trial_params (trial_id, param_name, param_value, distribution_json)
            SELECT id, 'optimizer', array_position({families}, optimizer::text) - 1, %s
                FROM public.trials WHERE sweep_id = %s
            UNION ALL SELECT id, 'lr', (hyperparameters->>'lr')::float, %s
                FROM public.trials WHERE sweep_id = %s
            UNION ALL SELECT id, 'beta1', (hyperparameters->'betas'->>0)::float, %s
                FROM public.trials WHERE sweep_id = %s
            UNION ALL SELECT id, 'beta2', (hyperparameters->'betas'->>1)::float, %s
                FROM public.trials WHERE sweep_id = %s
            """,
            (family, sweep_id, lr, sweep_id, beta1, sweep_id, beta2, sweep_id),
        )
        db.execute(
            """
            INSERT INTO optuna.trial_values (trial_id, objective, value, value_type)
            SELECT id, 0, objective_value, 'FINITE' FROM public.trials WHERE sweep_id = %s
            """,
            (sweep_id,),
        )
        db.execute(
            """
            INSERT INTO optuna.trial_intermediate_values (trial_id, step, intermediate_value,
                intermediate_value_type)
            SELECT m.trial_id, m.step, m.value_finite, 'FINITE'
            FROM public.metrics m JOIN public.trials t ON t.id = m.trial_id
            WHERE t.sweep_id = %s
            """,
            (sweep_id,),
        )
        db.execute("SELECT setval(pg_get_serial_sequence('optuna.trials', 'trial_id'),"
                   " (SELECT max(trial_id) FROM optuna.trials))")  # fmt: skip
        db.execute("VACUUM ANALYZE optuna.trials")
        db.execute("VACUUM ANALYZE optuna.trial_params")
        db.execute("VACUUM ANALYZE optuna.trial_values")
        db.execute("VACUUM ANALYZE optuna.trial_intermediate_values")
    storage.engine.dispose()
    return study_id


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No access log."""


def optuna_dashboard_seconds(url: str, study_id: int) -> tuple[float, int]:
    """Seconds and bytes of GET /api/studies/{id} on a fresh optuna-dashboard (cold cache)."""
    import optuna
    from optuna_dashboard import wsgi

    storage = optuna.storages.RDBStorage(
        url.replace("postgresql://", "postgresql+psycopg://"),
        engine_kwargs={"connect_args": {"options": "-csearch_path=optuna"}},
        skip_compatibility_check=True,
    )
    server: WSGIServer = make_server("127.0.0.1", 0, wsgi(storage), handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{server.server_port}", timeout=900) as c:
            start = time.perf_counter()
            response = c.get(f"/api/studies/{study_id}")
            seconds = time.perf_counter() - start
            response.raise_for_status()
            return seconds, len(response.content)
    finally:
        server.shutdown()
        storage.engine.dispose()


def optisweep_seconds(client: httpx.Client, sweep_id: int) -> tuple[float, int]:
    """Seconds and bytes of every request the sweep page makes when it opens, one by one."""
    total, size = 0.0, 0
    for path in PAGE_REQUESTS:
        start = time.perf_counter()
        response = client.get(path.format(id=sweep_id))
        total += time.perf_counter() - start
        response.raise_for_status()
        size += len(response.content)
    return total, size


def main() -> None:
    """For each size: load both, time both, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    rows = []
    for size in args.sizes:
        name = f"optisweep_vs_optuna_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(args.postgres, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        url = f"{args.postgres.rsplit('/', 1)[0]}/{name}"
        try:
            upgrade_engine(make_engine(url))
            sweep_id, seconds = load(url, size, args.epochs)
            study_id = copy_to_optuna(url, sweep_id)
            print(f"{size:,} trials x {args.epochs} epochs loaded ({seconds:.0f} s), copied")
            server, base, headers = serve(url)
            with httpx.Client(base_url=f"{base}/api/v1", timeout=900, headers=headers) as client:
                optisweep_seconds(client, sweep_id)  # warm the connection pool and imports
                ours = [optisweep_seconds(client, sweep_id) for _ in range(args.repeats)]
            server.should_exit = True
            theirs = [optuna_dashboard_seconds(url, study_id) for _ in range(args.repeats)]
            mine = statistics.median(s for s, _ in ours)
            other = statistics.median(s for s, _ in theirs)
            rows.append((size, mine, ours[0][1], other, theirs[0][1]))
            print(f"  optisweep {mine:.3f} s, optuna-dashboard {other:.3f} s")
        finally:
            with psycopg.connect(args.postgres, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(
        f"\n{'trials':>8} | {'optisweep page data s':>21} | {'MB':>6} | "
        f"{'optuna-dashboard study s':>24} | {'MB':>6} | {'ratio':>6}"
    )
    for size, mine, mine_bytes, other, other_bytes in rows:
        print(
            f"{size:>8,} | {mine:>21.3f} | {mine_bytes / 1e6:>6.2f} | {other:>24.3f} | "
            f"{other_bytes / 1e6:>6.2f} | {other / mine:>5.1f}x"
        )


if __name__ == "__main__":
    main()
