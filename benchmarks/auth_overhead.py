"""What does signing every request in cost? The API (no controller) under uvicorn on a fresh
database with one finished-looking sweep: the median latency of a route that needs no token
(``/healthz``), of the cheapest signed-in one (``/me``: the token's lookup), and of a sweep's
page of data as an admin and as a project's viewer (the role's lookup too), as ratios to
``/healthz``. Keep-alive client, 300 calls each after 20 warm-ups.

Run: ``.venv/bin/python -m benchmarks.auth_overhead [--postgres URL]``
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
import uuid

import httpx
import psycopg

from benchmarks.dashboard_queries import serve
from optisweep.service.db.migrate import upgrade_engine
from optisweep.service.db.session import make_engine

CALLS = 300
SPEC = {
    "name": "auth-bench",
    "workload": {"name": "rosenbrock", "epochs": 2, "steps_per_epoch": 5},
    "space": {"optimizers": ["sgd", "adam"], "lr": {"values": [0.001, 0.01]}},
    "search": {"algorithm": "grid"},
    "objective": {"metric": "val_loss", "mode": "min"},
}


def median_ms(client: httpx.Client, path: str, headers: dict[str, str]) -> float:
    """The median milliseconds of CALLS GETs of ``path``."""
    for _ in range(20):
        client.get(path, headers=headers).raise_for_status()
    samples = []
    for _ in range(CALLS):
        start = time.perf_counter()
        client.get(path, headers=headers).raise_for_status()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e3


def measure(url: str) -> list[tuple[str, float]]:
    """The rows of one database's table."""
    upgrade_engine(make_engine(url))
    server, base, admin = serve(url)
    try:
        with httpx.Client(base_url=f"{base}/api/v1", timeout=60) as client:
            sweep = client.post("/sweeps", json=SPEC, headers=admin).json()["id"]
            viewer = client.post("/users", json={"name": "bench-viewer"}, headers=admin).json()
            client.put(
                "/projects/default/members/bench-viewer", json={"role": "viewer"}, headers=admin
            ).raise_for_status()
            as_viewer = {"Authorization": f"Bearer {viewer['token']['token']}"}
            return [
                ("GET /healthz (no token)", median_ms(client, "/healthz", {})),
                ("GET /me (token lookup)", median_ms(client, "/me", admin)),
                ("GET /sweeps/{id} as admin", median_ms(client, f"/sweeps/{sweep}", admin)),
                (
                    "GET /sweeps/{id} as viewer (+ role)",
                    median_ms(client, f"/sweeps/{sweep}", as_viewer),
                ),
            ]
    finally:
        server.should_exit = True


def main() -> None:
    """Both databases, one table each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as folder:
        databases = [("sqlite", f"sqlite:///{folder}/auth.db")]
        name = f"optisweep_auth_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(args.postgres, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        databases.append(("postgresql", f"{args.postgres.rsplit('/', 1)[0]}/{name}"))
        try:
            for label, url in databases:
                rows = measure(url)
                base = rows[0][1]
                print(f"\n{label}: {'route':42} {'median ms':>10} {'x /healthz':>11}")
                for route, ms in rows:
                    print(f"{'':{len(label) + 2}}{route:42} {ms:10.2f} {ms / base:11.2f}")
        finally:
            with psycopg.connect(args.postgres, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
