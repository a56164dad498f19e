"""How fast are the dashboard's endpoints on a very large sweep, and how soon is its page drawn?

A synthetic sweep of 100,000 trials x 100 epochs (10M metric rows) is generated inside
PostgreSQL (generate_series: seven families, log-uniform lr, betas, a plausible accuracy curve
per trial), then the API (no controller) serves it under uvicorn. Each endpoint is called 20
times; the table shows the median and p95. Then Chromium (Playwright, Debian's package) opens
the sweep page and the time until the first chart is drawn is measured, 5 times.

Run: ``.venv/bin/python -m benchmarks.dashboard_queries [--trials 100000] [--epochs 100]``
(PostgreSQL at --postgres, default postgresql://postgres@127.0.0.1:5432/test).
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

import httpx
import uvicorn

from optisweep.service.config import Settings
from optisweep.service.db.migrate import upgrade_engine
from optisweep.service.db.session import make_engine
from optisweep.service.main import create_app

FAMILIES = ["sgd", "momentum", "adagrad", "adadelta", "rmsprop", "adam", "adamax"]
SPEC: dict[str, Any] = {
    "name": "dashboard-benchmark",
    "workload": {"name": "mlp-digits", "epochs": 100, "batch_size": 64},
    "space": {
        "optimizers": FAMILIES,
        "lr": {"low": 1e-4, "high": 1e-1, "log": True},
        "beta1": {"low": 0.8, "high": 0.99},
        "beta2": {"low": 0.9, "high": 0.9999},
    },
    "search": {"algorithm": "random", "num_trials": 100_000, "seed": 0},
    "objective": {"metric": "val_accuracy", "mode": "max"},
}


def load(url: str, trials: int, epochs: int) -> tuple[int, float]:
    """Create the synthetic sweep with SQL alone; its id and the seconds it took. One function
    on purpose: the rows of every table it fills are written in one COPY session, in order."""
    import json

    import psycopg
    from sqlalchemy.orm import Session

    from optisweep.service.sweeps.repository import default_project_id

    start = time.perf_counter()
    engine = make_engine(url)
    with Session(engine) as session:  # sweeps belong to a project (issue 29): the default one
        project = default_project_id(session)
        session.commit()
    engine.dispose()
    spec = {**SPEC, "workload": {**SPEC["workload"], "epochs": epochs}}
    spec["search"] = {**SPEC["search"], "num_trials": trials}
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as db:
        row = db.execute(
            "INSERT INTO sweeps (name, spec, status, num_trials, created_at, updated_at,"
            " finished_at, project_id) VALUES (%s, %s, 'completed', %s, now(), now(), now(), %s)"
            " RETURNING id",
            (spec["name"], json.dumps(spec), trials, project),
        ).fetchone()
        assert row is not None
        sweep_id = int(row[0])
        families = "ARRAY[" + ",".join(f"'{f}'" for f in FAMILIES) + "]"
        # Trial i: family i mod 7, lr log-uniform, an accuracy that peaks at a family's best lr.
        db.execute(
            f"""
            INSERT INTO trials (sweep_id, number, optimizer, hyperparameters, seed, status,
                attempt, epochs_run, objective_value, objective_kind, best_objective_value,
                best_objective_kind, created_at, started_at, finished_at)
            SELECT %s, i, ({families})[1 + i %% 7],
                json_build_object('lr', lr, 'betas', json_build_array(b1, b2),
                                  'momentum', b1, 'rho', b2, 'alpha', b2),
                i, 'completed', 1, %s, acc, 'finite', acc, 'finite', now(), now(), now()
            FROM (
                SELECT i, lr, b1, b2,
                    0.99 - 0.08 * power(log(lr) + 2.0 + (i %% 7) * 0.2, 2) / 4 AS acc
                FROM (
                    SELECT i, power(10, -4 + 3 * random()) AS lr, 0.8 + 0.19 * random() AS b1,
                        0.9 + 0.0999 * random() AS b2
                    FROM generate_series(0, %s - 1) AS i
                ) AS drawn
            ) AS scored
            """,
            (sweep_id, epochs, trials),
        )
        db.execute(
            """
            INSERT INTO metrics (trial_id, name, step, value_finite, value_kind)
            SELECT t.id, 'val_accuracy', s,
                t.objective_value * (1 - exp(-s / 10.0)) + 0.002 * random(), 'finite'
            FROM trials t, generate_series(1, %s) AS s
            WHERE t.sweep_id = %s
            """,
            (epochs, sweep_id),
        )
        # The family tallies the controller keeps as reports arrive, as if the trials had
        # reported in number order: improvements of each family's best, and what each spent.
        db.execute(
            """
            INSERT INTO family_improvements (sweep_id, optimizer, epochs_spent, value, trial_id,
                epoch)
            SELECT %(sweep)s, optimizer, spent, best, id, %(epochs)s FROM (
                SELECT id, optimizer, spent, best,
                    lag(best) OVER (PARTITION BY optimizer ORDER BY number) AS previous
                FROM (
                    SELECT id, optimizer, number,
                        sum(epochs_run) OVER (PARTITION BY optimizer ORDER BY number) AS spent,
                        max(best_objective_value) OVER (PARTITION BY optimizer ORDER BY number)
                            AS best
                    FROM trials WHERE sweep_id = %(sweep)s
                ) AS running
            ) AS steps
            WHERE previous IS NULL OR best > previous
            """,
            {"sweep": sweep_id, "epochs": epochs},
        )
        db.execute(
            """
            INSERT INTO family_tallies (sweep_id, optimizer, epochs_spent, best_value,
                best_trial_id)
            SELECT %(sweep)s, optimizer, sum(epochs_run), max(best_objective_value),
                (array_agg(id ORDER BY best_objective_value DESC))[1]
            FROM trials WHERE sweep_id = %(sweep)s GROUP BY optimizer
            """,
            {"sweep": sweep_id},
        )
        # What autovacuum does to a table that stopped growing: statistics, and the visibility
        # map that lets curves be read from the covering index alone.
        db.execute("VACUUM ANALYZE trials")
        db.execute("VACUUM ANALYZE metrics")
    return sweep_id, time.perf_counter() - start


def serve(url: str) -> tuple[uvicorn.Server, str, dict[str, str]]:
    """The API (no controller, no Ray) under uvicorn in a thread; its URL, and an admin's
    Authorization header (every request is authenticated, as a user's would be)."""
    import socket
    import tempfile

    from optisweep.service.accounts import repository as accounts
    from optisweep.service.db.session import make_sessionmaker

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    token_file = f"{tempfile.mkdtemp(prefix='optisweep-bench-')}/token"
    settings = Settings(
        database_url=url,
        token_file=token_file,
        rate_limit="1000000/minute",
        rate_limit_anonymous="1000000/minute",
    )
    app = create_app(settings, run_controller=False)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    engine = make_engine(url)
    with make_sessionmaker(engine)() as session:
        admin = accounts.user_named(session, "admin")
        _, token = accounts.create_token(session, admin, name="benchmark", days=1)
        session.commit()
    engine.dispose()
    return server, f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {token}"}


def time_endpoint(client: httpx.Client, path: str, calls: int) -> tuple[float, float, int]:
    """Median and p95 seconds of ``calls`` GETs (after one warm-up), and the response size."""
    size = len(client.get(path).content)
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        response = client.get(path)
        samples.append(time.perf_counter() - start)
        response.raise_for_status()
    samples.sort()
    return statistics.median(samples), samples[int(0.95 * (len(samples) - 1))], size


def first_chart_seconds(
    base: str, sweep_id: int, repeats: int, screenshot: str | None = None
) -> tuple[list[float], list[float]]:
    """Seconds from navigation until the learning-curve chart is drawn, and until all five
    charts are, in Chromium; then, if asked, a screenshot of the whole page."""
    from playwright.sync_api import sync_playwright

    first, every = [], []
    charts = ["curves", "lr", "best", "importance", "parallel"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        for _ in range(repeats):
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            start = time.perf_counter()
            page.goto(f"{base}/sweeps/{sweep_id}")
            page.wait_for_selector("#chart-curves[data-drawn]", timeout=60_000)
            first.append(time.perf_counter() - start)
            for chart in charts:
                page.wait_for_selector(f"#chart-{chart}[data-drawn]", timeout=60_000)
            every.append(time.perf_counter() - start)
            if screenshot is not None and len(every) == repeats:
                page.wait_for_selector("#trials tbody tr", timeout=60_000)
                page.set_viewport_size({"width": 1400, "height": 1900})  # charts, not all rows
                page.wait_for_timeout(500)  # the charts follow their divs' new size
                page.screenshot(path=screenshot)
            page.close()
        browser.close()
    return first, every


def main() -> None:
    """Load the sweep, time every endpoint, time the page; print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--trials", type=int, default=100_000)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument(
        "--reuse", metavar="DATABASE", help="a database an earlier run loaded and --keep kept"
    )
    parser.add_argument("--keep", action="store_true", help="keep the database for --reuse")
    parser.add_argument("--screenshot", metavar="PNG", help="save the sweep page's last load")
    args = parser.parse_args()
    import psycopg

    name = args.reuse or f"optisweep_dashboard_{uuid.uuid4().hex[:8]}"
    if not args.reuse:
        with psycopg.connect(args.postgres, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
    url = f"{args.postgres.rsplit('/', 1)[0]}/{name}"
    try:
        upgrade_engine(make_engine(url))
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
        if args.reuse:
            sweep_id = 1
            print(f"reusing database {name} (sweep 1)")
        else:
            sweep_id, seconds = load(url, args.trials, args.epochs)
            print(
                f"loaded {args.trials:,} trials x {args.epochs} epochs "
                f"({args.trials * args.epochs:,} metric rows) into PostgreSQL in {seconds:.0f} s"
            )
        server, base, headers = serve(url)
        paths = [
            "/sweeps/{id}",
            "/sweeps/{id}/leaderboard",
            "/sweeps/{id}/trials?limit=100&sort=objective",
            "/sweeps/{id}/trials?limit=500&sort=best_objective",
            "/sweeps/{id}/curves?max_points=200&limit=300",
            "/sweeps/{id}/lr-sensitivity",
            "/sweeps/{id}/lr-sensitivity?max_points=500",
            "/sweeps/{id}/best-so-far",
            "/sweeps/{id}/parallel?limit=1000",
            "/sweeps/{id}/importance",
        ]
        print(f"\n{'endpoint (GET /api/v1...)':52} {'median ms':>10} {'p95 ms':>8} {'KB':>8}")
        with httpx.Client(base_url=f"{base}/api/v1", timeout=300, headers=headers) as client:
            for path in paths:
                median, p95, size = time_endpoint(client, path.format(id=sweep_id), args.calls)
                print(f"{path:52} {median * 1e3:10.0f} {p95 * 1e3:8.0f} {size / 1024:8.0f}")
            # The CSV export is a download of every trial, not a dashboard query: 3 calls.
            median, p95, size = time_endpoint(client, f"/sweeps/{sweep_id}/trials.csv", 3)
            shown = "/sweeps/{id}/trials.csv (export, 3 calls)"
            print(f"{shown:52} {median * 1e3:10.0f} {p95 * 1e3:8.0f} {size / 1024:8.0f}")
        first, every = first_chart_seconds(base, sweep_id, 5, args.screenshot)
        print("\nsweep page in Chromium (5 loads): first chart drawn median ", end="")
        print(
            f"{statistics.median(first):.2f} s (max {max(first):.2f} s), all five charts ", end=""
        )
        print(f"median {statistics.median(every):.2f} s (max {max(every):.2f} s)")
        server.should_exit = True
    finally:
        if not args.keep:
            with psycopg.connect(args.postgres, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
