"""How long does the reference sweep take: optisweep (packed and not) vs Ray Tune, Optuna, a loop?

The reference sweep (examples/digits-optimizers.yaml): seven optimizer families, lr
log-uniform in [1e-4, 1e-1], beta1 in [0.8, 0.99], beta2 in [0.9, 0.9999], MLP 64-128-10 on
scikit-learn's digits, 20 epochs, batch 64. Every runner trains the same configurations (the
random searcher's draws, with the same initialisation and data seeds) through the same
training loop, so their best validation accuracies agree and only the machinery differs.

Each runner runs in its own process (its own Ray, its own threads):
- optisweep: a real `optisweep serve`, the sweep submitted over HTTP, timed until every result
  is in the database (SQLite; PostgreSQL too with --postgres URL); then the same sweep again on
  the same server ("again": Ray's workers already started, as in a service that has run before);
- optisweep-unpacked: the same with `resources.pack: false` (one Ray task per trial);
- baseline: the optisweep runner with the server of another checkout (``--baseline DIR``,
  e.g. a `git worktree` of an earlier commit), run in turn with this one's: a change's
  before and after in one run;
- ray-tune: Tuner over the same configurations, reuse_actors=True, 1 CPU per trial, each
  trial through optisweep's own loop (train_trial);
- ray-tune-lean: the same Tuner with the strongest fair trainable: a plain loop (shuffle,
  forward, backward, torch.optim step; one evaluation of the validation set per epoch,
  reported), nothing of optisweep's bookkeeping;
- optuna: a study on SQLite storage with the configurations enqueued, n_jobs=2;
- loop: train_trial for each configuration in one process;
- floor: the same trials written by hand as one stacked model in one process (2 threads):
  batched matrix products and one vectorised Adam step for every member (per-member lr), one
  batched evaluation per epoch: what the arithmetic alone costs, a lower bound.

    python -m benchmarks.sweep_throughput [--trials 64 512] [--runners ...] [--postgres URL]
        [--repeats N] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import httpx
import yaml

from benchmarks.serving import served

REPO = Path(__file__).resolve().parent.parent
SPEC = REPO / "examples" / "digits-optimizers.yaml"
RUNNERS = (
    "optisweep",
    "baseline",
    "optisweep-unpacked",
    "ray-tune",
    "ray-tune-lean",
    "optuna",
    "loop",
    "floor",
)


SERVED = ("optisweep", "baseline", "optisweep-unpacked")
"""The runners that serve and take a database."""


def reference_spec(trials: int) -> dict[str, Any]:
    """The example sweep with ``trials`` random configurations."""
    spec: dict[str, Any] = yaml.safe_load(SPEC.read_text())
    spec["search"]["num_trials"] = trials
    spec["name"] = f"throughput-{trials}"
    return spec


def trial_specs(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The single trials optisweep would run for this sweep: same draws, same seeds."""
    from optisweep.service.sweeps.expansion import expand, trial_seed
    from optisweep.service.sweeps.schemas import SweepCreate

    sweep = SweepCreate.model_validate(spec)
    return [
        {
            "workload": sweep.workload.config(),
            "optimizer": suggestion.optimizer,
            "hyperparameters": suggestion.hyperparameters,
            "seed": trial_seed(sweep.search.seed, number),
            "data_seed": sweep.search.seed,
            "device": "cpu",
        }
        for number, suggestion in enumerate(expand(sweep, max_trials=100_000))
    ]


def run_optisweep(
    spec: dict[str, Any], database_url: str, source: Path | None = None
) -> dict[str, Any]:
    """Serve (this checkout, or ``source``), submit over HTTP, wait until the sweep is
    finished in the database."""
    folder = Path(database_url.removeprefix("sqlite:///")).parent
    if not database_url.startswith("sqlite"):
        folder = Path(tempfile.mkdtemp(prefix="optisweep-bench-"))
    # One keep-alive client: a new connection per poll costs this 2-core machine's packs CPU.
    with (
        served(database_url, folder, source=source) as server,
        httpx.Client(base_url=server.api, headers=server.headers, timeout=60) as client,
    ):
        warm_after = _settle(client, os.environ.get(SETTLE, "0"))
        timings, traces = [], []
        for _ in range(2):  # a fresh server's first sweep, then the same sweep again
            start = time.perf_counter()
            posted = datetime.now(UTC)
            sweep_id = client.post("/sweeps", json=spec).json()["id"]
            while client.get(f"/sweeps/{sweep_id}").json()["status"] in ("pending", "running"):
                time.sleep(0.1)
            timings.append(time.perf_counter() - start)
            traces.append(first_sweep_phases(client, sweep_id, posted))
        board = client.get(f"/sweeps/{sweep_id}/leaderboard").json()
    best = max(entry["trial"]["objective"] for entry in board["entries"])
    return {
        "seconds": timings[0],
        "warm_seconds": timings[1],
        "ready_seconds": server.ready_seconds,
        "best": best,
        "phases": traces[0],
        "again_phases": traces[1],
        "warm_after_ready_seconds": warm_after,
    }


def _settle(client: httpx.Client, settle: str) -> float:
    """``--settle``: wait that many seconds, or with ``warm`` until ``/readyz`` says the
    workers' warm-up finished; the seconds waited."""
    start = time.perf_counter()
    if settle != "warm":
        time.sleep(float(settle))
        return time.perf_counter() - start
    while client.get("/readyz").json().get("workers", "warm") != "warm":
        time.sleep(0.05)
    return time.perf_counter() - start


SETTLE = "OPTISWEEP_BENCH_SETTLE"
"""``--settle S`` (seconds, or ``warm``): the served runners wait that long after ``/readyz``
before the first sweep, or until it says the workers are warm (a diagnostic: does start-up
work still running slow the first sweep?)."""

PHASES = ("created", "first started", "first finished", "last started", "last finished", "ended")
"""The first sweep's trace, seconds after its POST (the server's clock, this machine's):
the sweep's row, its first trial dispatched and finished (the first pack's build and
training), its last trial dispatched and finished, the sweep marked finished."""


def first_sweep_phases(client: httpx.Client, sweep_id: int, posted: datetime) -> dict[str, float]:
    """Where a sweep's seconds went, from the timestamps its rows keep (``PHASES``)."""
    sweep = client.get(f"/sweeps/{sweep_id}").json()
    trials = client.get(f"/sweeps/{sweep_id}/trials", params={"limit": 1000}).json()["items"]

    def after(stamp: str | None) -> float:
        if stamp is None:
            return math.nan
        moment = datetime.fromisoformat(stamp)
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        return (moment - posted).total_seconds()

    started = sorted(after(t["started_at"]) for t in trials)
    finished = sorted(after(t["finished_at"]) for t in trials)
    values = (
        after(sweep["created_at"]),
        started[0],
        finished[0],
        started[-1],
        finished[-1],
        after(sweep.get("finished_at")),
    )
    return dict(zip(PHASES, values, strict=True))


def _tune(trainable: Any, specs: list[dict[str, Any]]) -> dict[str, Any]:
    """Ray Tune over ``specs`` (one CPU per trial, actors reused) with ``trainable``; timed."""
    import ray
    from ray import tune

    ray.init(address="local", include_dashboard=False, log_to_driver=False)
    with tempfile.TemporaryDirectory() as storage:
        start = time.perf_counter()
        tuner = tune.Tuner(
            tune.with_resources(trainable, {"cpu": 1}),
            param_space={"trial": tune.grid_search(specs)},
            tune_config=tune.TuneConfig(metric="val_accuracy", mode="max", reuse_actors=True),
            run_config=tune.RunConfig(storage_path=storage, verbose=0),
        )
        results = tuner.fit()
        seconds = time.perf_counter() - start
    best = max((results[i].metrics or {}).get("val_accuracy", 0.0) for i in range(len(results)))
    ray.shutdown()
    return {"seconds": seconds, "best": best}


def run_ray_tune(specs: list[dict[str, Any]]) -> dict[str, Any]:
    """Ray Tune over the same configurations, one CPU per trial, actors reused."""
    from ray import tune

    from optisweep.workers.specs import PackSpec
    from optisweep.workers.train import train_trial

    def trainable(config: dict[str, Any]) -> None:
        train_trial(
            PackSpec.single(**config["trial"]),
            report=lambda epoch, metrics: tune.report(metrics),
        )

    return _tune(trainable, specs)


def run_ray_tune_lean(specs: list[dict[str, Any]]) -> dict[str, Any]:
    """Ray Tune with a plain loop per trial: what a careful Ray Tune user would write."""
    from ray import tune

    def trainable(config: dict[str, Any]) -> None:
        import torch

        from optisweep.optimizers import create_optimizer
        from optisweep.workers.workloads import parse_workload_config

        torch.set_num_threads(1)
        trial = config["trial"]
        workload, workload_config = parse_workload_config(trial["workload"])
        torch.manual_seed(trial["seed"])
        built = workload.build(workload_config, seed=trial["seed"], device=torch.device("cpu"))
        x, y = cast("tuple[torch.Tensor, torch.Tensor]", built.train)
        x_val, y_val = cast("tuple[torch.Tensor, torch.Tensor]", built.val)
        model = built.model
        optimizer = create_optimizer(
            trial["optimizer"], model.parameters(), **trial["hyperparameters"]
        )
        generator = torch.Generator().manual_seed(trial["data_seed"])
        for _ in range(workload_config.epochs):
            model.train()
            for batch in torch.randperm(len(x), generator=generator).split(64):
                optimizer.zero_grad(set_to_none=True)
                torch.nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
                optimizer.step()
            model.eval()
            with torch.no_grad():
                accuracy = (model(x_val).argmax(1) == y_val).double().mean().item()
            tune.report({"val_accuracy": accuracy})

    return _tune(trainable, specs)


def run_floor(specs: list[dict[str, Any]]) -> dict[str, Any]:
    """The trials as one hand-written stacked MLP with a vectorised Adam step (2 threads)."""
    import torch

    from optisweep.workers.workloads import parse_workload_config

    torch.set_num_threads(2)
    workload, config = parse_workload_config(specs[0]["workload"])
    models = []
    for spec in specs:  # each member's own initialisation, as the trials have it
        torch.manual_seed(spec["seed"])
        models.append(workload.build(config, seed=spec["seed"], device=torch.device("cpu")))
    x, y = cast("tuple[torch.Tensor, torch.Tensor]", models[0].train)
    x_val, y_val = cast("tuple[torch.Tensor, torch.Tensor]", models[0].val)
    linears = [
        [m for m in cast("torch.nn.Sequential", b.model) if isinstance(m, torch.nn.Linear)]
        for b in models
    ]
    assert len(linears[0]) == 2, "the floor is written for the reference MLP"
    start = time.perf_counter()
    stacked = []
    for index in (0, 1):
        stacked.append(torch.stack([layers[index].weight.detach() for layers in linears]))
        stacked.append(torch.stack([layers[index].bias.detach() for layers in linears]))
    params = [p.clone().requires_grad_() for p in stacked]
    lr = torch.tensor([s["hyperparameters"]["lr"] for s in specs])
    lrs = [lr.view(-1, *([1] * (p.dim() - 1))) for p in params]
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    k = len(specs)

    def forward(inputs: torch.Tensor) -> torch.Tensor:
        w1, b1, w2, b2 = params
        hidden = torch.relu(
            torch.baddbmm(b1[:, None], inputs.expand(k, -1, -1), w1.transpose(1, 2))
        )
        return torch.baddbmm(b2[:, None], hidden, w2.transpose(1, 2))

    generator = torch.Generator().manual_seed(specs[0]["data_seed"])
    step, best = 0, 0.0
    for _ in range(config.epochs):
        for batch in torch.randperm(len(x), generator=generator).split(64):
            logits = forward(x[batch])
            loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), y[batch].repeat(k), reduction="sum"
            ) / len(batch)
            grads = torch.autograd.grad(loss, params)
            step += 1
            with torch.no_grad():
                for p, g, m_, v_, lr_ in zip(params, grads, m, v, lrs, strict=True):
                    m_.lerp_(g, 0.1)  # Adam, betas (0.9, 0.999), every member its own lr
                    v_.mul_(0.999).addcmul_(g, g, value=0.001)
                    denom = (v_ / (1 - 0.999**step)).sqrt_().add_(1e-8)
                    p.sub_(lr_ / (1 - 0.9**step) * m_ / denom)
        with torch.no_grad():
            accuracy = (forward(x_val).argmax(2) == y_val).double().mean(1)
        best = max(best, float(accuracy.max()))
    return {"seconds": time.perf_counter() - start, "best": best}


def run_optuna(specs: list[dict[str, Any]]) -> dict[str, Any]:
    """An Optuna study on SQLite storage with every configuration enqueued, two threads."""
    import optuna

    from optisweep.workers.specs import PackSpec
    from optisweep.workers.train import train_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as folder:
        study = optuna.create_study(storage=f"sqlite:///{folder}/optuna.db", direction="maximize")
        for index in range(len(specs)):
            study.enqueue_trial({"index": index})

        def objective(trial: optuna.Trial) -> float:
            spec = PackSpec.single(**specs[trial.suggest_int("index", 0, len(specs) - 1)])
            result = train_trial(
                spec, report=lambda epoch, metrics: trial.report(metrics["val_accuracy"], epoch)
            )
            return result.metrics["val_accuracy"]

        start = time.perf_counter()
        study.optimize(objective, n_trials=len(specs), n_jobs=2)
        seconds = time.perf_counter() - start
        best = study.best_value
    return {"seconds": seconds, "best": best}


def run_loop(specs: list[dict[str, Any]]) -> dict[str, Any]:
    """train_trial for each configuration, one after another, in this process."""
    from optisweep.workers.specs import PackSpec
    from optisweep.workers.train import train_trial

    start = time.perf_counter()
    best = max(train_trial(PackSpec.single(**spec)).metrics["val_accuracy"] for spec in specs)
    return {"seconds": time.perf_counter() - start, "best": best}


def _one(
    runner: str, trials: int, database_url: str | None, baseline: Path | None = None
) -> dict[str, Any]:
    spec = reference_spec(trials)
    if runner in SERVED:
        if runner == "optisweep-unpacked":
            spec["resources"]["pack"] = False
        if database_url is None:
            raise ValueError(f"{runner} needs a database URL")
        return run_optisweep(spec, database_url, baseline if runner == "baseline" else None)
    specs = trial_specs(spec)
    runners = {
        "ray-tune": run_ray_tune,
        "ray-tune-lean": run_ray_tune_lean,
        "optuna": run_optuna,
        "loop": run_loop,
        "floor": run_floor,
    }
    return runners[runner](specs)


def _in_subprocess(
    runner: str, trials: int, database_url: str | None, baseline: Path | None = None
) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.sweep_throughput", "--child", runner]
    command += ["--trials", str(trials)]
    if database_url:
        command += ["--database-url", database_url]
    if baseline is not None:
        command += ["--baseline", str(baseline)]
    output = subprocess.run(command, capture_output=True, text=True, check=False, cwd=REPO)
    if output.returncode != 0:
        return {"error": output.stderr.strip().splitlines()[-1] if output.stderr else "failed"}
    result: dict[str, Any] = json.loads(output.stdout.strip().splitlines()[-1])
    return result


def _postgres_database(admin_url: str) -> str:
    import psycopg

    name = f"optisweep_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return f"{admin_url.rsplit('/', 1)[0]}/{name}"


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each timing over the runs that worked (the first run's error if none),
    each run's timings and first-sweep trace kept."""
    good = [run for run in runs if "error" not in run]
    if not good:
        return runs[0]
    keys = [key for key in good[0] if key.endswith("seconds")]
    return {
        **good[0],
        **{key: statistics.median(run[key] for run in good) for key in keys},
        "runs": {key: [round(run[key], 2) for run in good] for key in keys},
        "traces": [run["phases"] for run in good if run.get("phases")],
        "again_traces": [run["again_phases"] for run in good if run.get("again_phases")],
    }


def _distribution(values: list[float]) -> str:
    """min, median, p90 (nearest rank) and max, and p90 / median."""
    ordered = sorted(values)
    p90 = ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]
    median = statistics.median(ordered)
    return (
        f"min {ordered[0]:.1f}, median {median:.1f}, p90 {p90:.1f}, max {ordered[-1]:.1f} "
        f"(p90 / median {p90 / median:.2f})"
    )


def _print_traces(rows: list[tuple[str, dict[str, Any]]]) -> None:
    """Each served runner's fresh-server runs: the distribution and every run's trace."""
    for name, result in rows:
        runs = result.get("runs", {}).get("seconds", [])
        if len(runs) < 2:
            continue
        print(f"\n{name}, fresh server over {len(runs)} runs: {_distribution(runs)}")
        if not result.get("traces"):
            continue  # not served: no rows to trace
        again = result.get("runs", {}).get("warm_seconds", [])
        for label, totals, traces in (
            ("first sweep", runs, result["traces"]),
            ("the same sweep again", again, result.get("again_traces", [])),
        ):
            print(f"{label} (s after its POST):")
            print(f"{'run':>4} {'total':>6} " + " ".join(f"{phase:>14}" for phase in PHASES))
            for index, (total, trace) in enumerate(zip(totals, traces, strict=False)):
                cells = " ".join(f"{trace[phase]:14.2f}" for phase in PHASES)
                print(f"{index:>4} {total:6.2f} {cells}")


def _runs(
    runners: list[str], trials: int, folder: str, repeats: int, baseline: Path | None
) -> dict[str, dict[str, Any]]:
    """Each runner ``repeats`` times, each run in its own process, the runners taking turns
    (so a slow spell of the machine falls on all of them); medians."""
    runs: dict[str, list[dict[str, Any]]] = {runner: [] for runner in runners}
    for i in range(repeats):
        for runner in runners:  # a new database each time: every run is a first start
            url = f"sqlite:///{folder}/{runner}-{i}.db" if runner in SERVED else None
            runs[runner].append(_in_subprocess(runner, trials, url, baseline))
    return {runner: _median(results) for runner, results in runs.items()}


def _print_table(rows: list[tuple[str, dict[str, Any]]]) -> None:
    reference = next(
        (r["seconds"] for n, r in rows if n == "optisweep (sqlite)" and "seconds" in r), None
    )
    print(f"{'runner':32} {'wall s':>8} {'x optisweep':>12} {'best val_accuracy':>18}")
    for name, result in rows:
        if "error" in result:
            print(f"{name:32} failed: {result['error']}")
            continue
        ratio = f"{result['seconds'] / reference:.1f}" if reference else "-"
        print(f"{name:32} {result['seconds']:8.1f} {ratio:>12} {result['best']:18.4f}")
        if "warm_seconds" in result:
            warm = result["warm_seconds"]
            ratio = f"{warm / reference:.1f}" if reference else "-"
            print(f"{name + ', again':32} {warm:8.1f} {ratio:>12} {result['best']:18.4f}")
            print(f"{name + ', start to ready':32} {result['ready_seconds']:8.1f}")
        if len(result.get("runs", {}).get("seconds", [])) > 1:
            print(f"{'':32} runs: {result['runs']}")


def _print_targets(rows: list[tuple[str, dict[str, Any]]]) -> None:
    """Issue 23's ratios: lean Ray Tune / optisweep (>= 4x) and optisweep / floor (<= 2x)."""
    found = dict(rows)
    ours, lean, floor = (found.get(k, {}) for k in ("optisweep (sqlite)", "ray-tune-lean", "floor"))
    if "seconds" not in ours:
        return
    print()
    for label, key in (("fresh server", "seconds"), ("warm workers", "warm_seconds")):
        parts = [f"optisweep {label}: {ours[key]:.1f} s"]
        if "seconds" in lean:
            parts.append(f"lean Ray Tune / optisweep {lean['seconds'] / ours[key]:.2f}x")
        if "seconds" in floor:
            parts.append(f"optisweep / floor {ours[key] / floor['seconds']:.2f}x")
        print("; ".join(parts))
    total = ours["ready_seconds"] + ours["seconds"]
    print(f"optisweep serve started to the first sweep's end: {total:.1f} s")
    before = found.get("baseline (sqlite)", {})
    if "seconds" in before:
        for label, key in (
            ("fresh", "seconds"),
            ("warm", "warm_seconds"),
            ("ready", "ready_seconds"),
        ):
            print(f"baseline / this checkout, {label}: {before[key] / ours[key]:.2f}x")


def main() -> None:
    """Run every runner for each sweep size and print one table per size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, nargs="+", default=[64])
    parser.add_argument("--runners", nargs="+", default=list(RUNNERS), choices=RUNNERS)
    parser.add_argument("--repeats", type=int, default=1, help="runs per runner; medians")
    parser.add_argument("--postgres", help="admin URL; also run optisweep on PostgreSQL")
    parser.add_argument("--baseline", type=Path, help="another checkout, for the baseline runner")
    parser.add_argument(
        "--settle", default="0", help="seconds to wait after /readyz, or 'warm' (diagnostic)"
    )
    parser.add_argument("--child", choices=RUNNERS, help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_one(args.child, args.trials[0], args.database_url, args.baseline)))
        return
    runners = [r for r in args.runners if r != "baseline" or args.baseline is not None]
    os.environ[SETTLE] = args.settle  # the children read it

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, CPU only")
    for trials in args.trials:
        rows: list[tuple[str, dict[str, Any]]] = []
        with tempfile.TemporaryDirectory() as folder:
            results = _runs(runners, trials, folder, args.repeats, args.baseline)
            for runner in runners:
                rows.append((f"{runner} (sqlite)" if runner in SERVED else runner, results[runner]))
                if runner in SERVED and args.postgres:
                    pg = _postgres_database(args.postgres)
                    rows.append((f"{runner} (postgresql)", _in_subprocess(runner, trials, pg)))
        print(f"\n{trials} trials, mlp-digits, 20 epochs, batch 64")
        if args.repeats > 1:
            print(f"(medians of {args.repeats} runs each, one process per run)")
        _print_table(rows)
        _print_targets(rows)
        _print_traces(rows)


if __name__ == "__main__":
    main()
