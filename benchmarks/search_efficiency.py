"""How many epochs does each search method spend before it finds a near-best configuration?

The reference space (examples/digits-optimizers.yaml: mlp-digits, seven families, lr
log-uniform in [1e-4, 1e-1], beta1 in [0.8, 0.99], beta2 in [0.9, 0.9999], 20 epochs). The
target is the best validation accuracy of a 256-trial random search, less 0.5 points. For each
method and seed, trials are taken in the order they were created and their epochs summed until
the first epoch at which some trial reaches the target ("epochs to target"); a run that never
reaches it shows its total in parentheses.

Methods: optisweep random, tpe, random + asha, tpe + asha (a local Ray, the server's own
controller, SQLite); Ray Tune's ASHAScheduler over random search; Optuna's TPE with its
SuccessiveHalvingPruner (sequential, in process). ASHA everywhere: grace period 1 epoch,
reduction factor 3. Each run has the same budget of trials.

Run: ``.venv/bin/python -m benchmarks.search_efficiency [--seeds 5] [--trials 64]``

``--warm-start`` asks another question: does a sweep learn from an earlier one
(``search.warm_start``)? Per seed, on one database: a random search of 32 trials, then a TPE
search of 12 trials warm-started from it, and the same TPE search cold. Each search's best is
its best trial's last-epoch validation accuracy (the sweeps' own objective); a TPE search
"reaches" when its best is within 0.005 of the random search's, and the table says at which
of its trials (in the order they were created) it first did.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from typing import Any

from benchmarks.sweep_throughput import REPO, reference_spec

OPTISWEEP_METHODS = {
    "optisweep random": ("random", None),
    "optisweep tpe": ("tpe", None),
    "optisweep random+asha": ("random", {"name": "asha", "grace_period": 1, "reduction_factor": 3}),
    "optisweep tpe+asha": ("tpe", {"name": "asha", "grace_period": 1, "reduction_factor": 3}),
}
METHODS = (*OPTISWEEP_METHODS, "ray-tune random+asha", "optuna tpe+sha")
FAMILIES = ["sgd", "momentum", "adagrad", "adadelta", "rmsprop", "adam", "adamax"]


def run_optisweep(
    algorithm: str, scheduler: dict[str, Any] | None, *, trials: int, seed: int
) -> list[list[float]]:
    """One sweep through a controller on a local Ray; each trial's accuracy curve, in order."""
    import ray
    from sqlalchemy import select

    from optisweep.service.controller.loop import Controller
    from optisweep.service.db.migrate import upgrade_engine
    from optisweep.service.db.session import make_engine, make_sessionmaker
    from optisweep.service.sweeps.schemas import SweepCreate
    from optisweep.service.sweeps.service import submit_sweep
    from optisweep.service.trials.models import Trial
    from optisweep.service.trials.repository import metric_curves

    data = reference_spec(trials)
    data["search"].update(algorithm=algorithm, seed=seed)
    if scheduler is not None:
        data["search"]["scheduler"] = scheduler
    spec = SweepCreate.model_validate(data)
    ray.init(address="local", include_dashboard=False, log_to_driver=False)
    with tempfile.TemporaryDirectory() as folder:
        engine = make_engine(f"sqlite:///{folder}/bench.db")
        upgrade_engine(engine)
        sessions = make_sessionmaker(engine)
        with sessions.begin() as session:
            sweep_id = submit_sweep(session, spec, max_trials=100_000, claimed_by="bench").id
        controller = Controller(
            sessions, max_trials=100_000, controller_id="bench", sweep_id=sweep_id
        )
        controller.run_sweep(sweep_id)
        with sessions() as session:
            ids = list(
                session.scalars(
                    select(Trial.id).where(Trial.sweep_id == sweep_id).order_by(Trial.number)
                )
            )
            curves = metric_curves(session, trial_ids=ids, name="val_accuracy")
        engine.dispose()
    ray.shutdown()
    return [[curve[e] for e in sorted(curve)] for curve in (curves[i] for i in ids)]


def run_warm_start(*, seed: int, earlier_trials: int, trials: int) -> dict[str, list[float]]:
    """A random search, then TPE warm-started from it and TPE cold (one database, a local Ray,
    the real controller); each one's trials' objectives, in trial-number order."""
    import ray

    from optisweep.service.controller.loop import Controller
    from optisweep.service.db.migrate import upgrade_engine
    from optisweep.service.db.session import make_engine, make_sessionmaker
    from optisweep.service.sweeps.schemas import SweepCreate
    from optisweep.service.sweeps.service import submit_sweep
    from optisweep.service.trials.models import Trial

    ray.init(address="local", include_dashboard=False, log_to_driver=False)
    found: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        engine = make_engine(f"sqlite:///{folder}/bench.db")
        upgrade_engine(engine)
        sessions = make_sessionmaker(engine)
        earlier: int | None = None
        for name, algorithm, count, warm in (
            ("random", "random", earlier_trials, False),
            ("tpe warm", "tpe", trials, True),
            ("tpe cold", "tpe", trials, False),
        ):
            data = reference_spec(count)
            data["search"].update(algorithm=algorithm, seed=seed)
            if warm:
                data["search"]["warm_start"] = {"sweeps": [earlier]}
            with sessions.begin() as session:
                sweep = submit_sweep(
                    session, SweepCreate.model_validate(data), max_trials=100_000, claimed_by="b"
                )
                sweep_id = sweep.id
            Controller(
                sessions, max_trials=100_000, controller_id="b", sweep_id=sweep_id
            ).run_sweep(sweep_id)
            with sessions() as session:
                rows = session.query(Trial).filter(Trial.sweep_id == sweep_id)
                found[name] = [t.objective or 0.0 for t in rows.order_by(Trial.number)]
            earlier = earlier if earlier is not None else sweep_id
        engine.dispose()
    ray.shutdown()
    return found


def warm_start_table(seeds: int, *, earlier_trials: int, trials: int) -> None:
    """The warm-start question over ``seeds`` seeds: one row per seed, then the tally."""
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, CPU only")
    print(
        f"random search of {earlier_trials} trials, then TPE of {trials} trials warm-started "
        "from it and cold; reached: within 0.005 of the random search's best"
    )
    print(f"\n{'seed':>4} {'random':>8} {'tpe warm':>9} {'tpe cold':>9}  first trial reaching")
    reached: dict[str, list[int | None]] = {"tpe warm": [], "tpe cold": []}
    bests: dict[str, list[float]] = {"random": [], "tpe warm": [], "tpe cold": []}
    for seed in range(seeds):
        command = [sys.executable, "-m", "benchmarks.search_efficiency", "--warm-child"]
        command += ["--seed", str(seed), "--trials", str(trials)]
        command += ["--earlier-trials", str(earlier_trials)]
        output = subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPO)
        found = json.loads(output.stdout.strip().splitlines()[-1])
        for name in bests:
            bests[name].append(max(found[name]))
        target = max(found["random"]) - 0.005
        for name in reached:
            hits = [n for n, value in enumerate(found[name], start=1) if value >= target]
            reached[name].append(hits[0] if hits else None)
        print(
            f"{seed:>4} {bests['random'][-1]:8.4f} {bests['tpe warm'][-1]:9.4f} "
            f"{bests['tpe cold'][-1]:9.4f}  warm {reached['tpe warm'][-1] or '-'}, "
            f"cold {reached['tpe cold'][-1] or '-'}"
        )
    print(
        f"mean {statistics.mean(bests['random']):8.4f} {statistics.mean(bests['tpe warm']):9.4f} "
        f"{statistics.mean(bests['tpe cold']):9.4f}"
    )
    for name, firsts in reached.items():
        landed = [first for first in firsts if first is not None]
        median = statistics.median(first or trials + 1 for first in firsts)
        print(
            f"{name}: reached on {len(landed)}/{seeds} seeds; median first trial reaching "
            f"{median:g} (not reaching counts {trials + 1})"
        )


def _hyperparameters(family: str, lr: float, beta1: float, beta2: float) -> dict[str, Any]:
    from optisweep.optimizers import get_spec

    spec = get_spec(family)
    with_betas = spec.with_betas({"lr": lr}, beta1=beta1, beta2=beta2)
    return spec.validate(with_betas).model_dump(mode="json")


def run_ray_tune(*, trials: int, seed: int) -> list[list[float]]:
    """Ray Tune: random search with its ASHAScheduler, one CPU per trial, actors reused."""
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.basic_variant import BasicVariantGenerator

    from optisweep.workers.specs import PackSpec
    from optisweep.workers.train import train_trial

    workload = reference_spec(trials)["workload"]

    def trainable(config: dict[str, Any]) -> None:
        spec = PackSpec.single(
            workload=workload,
            optimizer=config["family"],
            hyperparameters=_hyperparameters(
                config["family"], config["lr"], config["beta1"], config["beta2"]
            ),
            seed=config["seed"],
            device="cpu",
        )
        train_trial(spec, report=lambda epoch, metrics: tune.report(metrics))

    space = {
        "family": tune.choice(FAMILIES),
        "lr": tune.loguniform(1e-4, 1e-1),
        "beta1": tune.uniform(0.8, 0.99),
        "beta2": tune.uniform(0.9, 0.9999),
        "seed": tune.randint(0, 2**31 - 1),
    }
    ray.init(address="local", include_dashboard=False, log_to_driver=False)
    with tempfile.TemporaryDirectory() as storage:
        tuner = tune.Tuner(
            tune.with_resources(trainable, {"cpu": 1}),
            param_space=space,
            tune_config=tune.TuneConfig(
                metric="val_accuracy",
                mode="max",
                num_samples=trials,
                search_alg=BasicVariantGenerator(random_state=seed),
                scheduler=ASHAScheduler(
                    max_t=workload["epochs"], grace_period=1, reduction_factor=3
                ),
                reuse_actors=True,
            ),
            run_config=tune.RunConfig(storage_path=storage, verbose=0),
        )
        results = tuner.fit()
        ordered = sorted(
            (results[i] for i in range(len(results))),
            key=lambda r: str(r.path),  # trial directories sort by creation
        )
        frames = [r.metrics_dataframe for r in ordered]
        curves = [list(f["val_accuracy"]) if f is not None else [] for f in frames]
    ray.shutdown()
    return curves


def run_optuna(*, trials: int, seed: int) -> list[list[float]]:
    """Optuna: TPE with its SuccessiveHalvingPruner, trials one after another in process."""
    import optuna

    from optisweep.workers.specs import PackSpec
    from optisweep.workers.train import train_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    workload = reference_spec(trials)["workload"]
    curves: list[list[float]] = []

    def objective(trial: optuna.Trial) -> float:
        family = str(trial.suggest_categorical("family", FAMILIES))
        hyperparameters = _hyperparameters(
            family,
            trial.suggest_float(f"{family}.lr", 1e-4, 1e-1, log=True),
            trial.suggest_float(f"{family}.beta1", 0.8, 0.99),
            trial.suggest_float(f"{family}.beta2", 0.9, 0.9999),
        )
        spec = PackSpec.single(
            workload=workload,
            optimizer=family,
            hyperparameters=hyperparameters,
            seed=trial.number,
            device="cpu",
        )
        curve: list[float] = []
        curves.append(curve)
        pruned = False

        def report(epoch: int, metrics: dict[str, float]) -> None:
            nonlocal pruned
            curve.append(metrics["val_accuracy"])
            trial.report(metrics["val_accuracy"], epoch)
            pruned = trial.should_prune()

        train_trial(spec, report=report, should_stop=lambda: pruned)
        if pruned:
            raise optuna.TrialPruned
        return curve[-1]

    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3),
    )
    study.optimize(objective, n_trials=trials)
    return curves


def epochs_to_target(curves: list[list[float]], target: float) -> tuple[int | None, int]:
    """Epochs spent (trials in creation order) until one reaches ``target``; and the total."""
    spent = 0
    for curve in curves:
        for epoch, value in enumerate(curve, start=1):
            if value >= target:
                return spent + epoch, sum(len(c) for c in curves)
        spent += len(curve)
    return None, spent


def _child(method: str, trials: int, seed: int) -> list[list[float]]:
    if method in OPTISWEEP_METHODS:
        algorithm, scheduler = OPTISWEEP_METHODS[method]
        return run_optisweep(algorithm, scheduler, trials=trials, seed=seed)
    if method == "ray-tune random+asha":
        return run_ray_tune(trials=trials, seed=seed)
    return run_optuna(trials=trials, seed=seed)


def _in_subprocess(method: str, trials: int, seed: int) -> list[list[float]] | str:
    command = [sys.executable, "-m", "benchmarks.search_efficiency", "--child", method]
    command += ["--trials", str(trials), "--seed", str(seed)]
    output = subprocess.run(command, capture_output=True, text=True, check=False, cwd=REPO)
    if output.returncode != 0:
        return output.stderr.strip().splitlines()[-1] if output.stderr else "failed"
    curves: list[list[float]] = json.loads(output.stdout.strip().splitlines()[-1])
    return curves


def main() -> None:
    """The reference target, then every method over every seed; one table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--trials", type=int, default=64)
    parser.add_argument("--reference-trials", type=int, default=256)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--child", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument(
        "--warm-start", action="store_true", help="Warm-started TPE against cold (a table)."
    )
    parser.add_argument("--earlier-trials", type=int, default=32)
    parser.add_argument("--warm-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.warm_child:
        bests = run_warm_start(
            seed=args.seed, earlier_trials=args.earlier_trials, trials=args.trials
        )
        print(json.dumps(bests))
        return
    if args.warm_start:
        trials = 12 if args.trials == 64 else args.trials  # --trials: the TPE searches' size
        warm_start_table(args.seeds, earlier_trials=args.earlier_trials, trials=trials)
        return
    if args.child:
        print(json.dumps(_child(args.child, args.trials, args.seed)))
        return

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, CPU only")
    reference = _in_subprocess("optisweep random", args.reference_trials, 1000)
    if isinstance(reference, str):
        raise SystemExit(f"reference search failed: {reference}")
    best = max(max(curve) for curve in reference if curve)
    target = best - 0.005
    print(f"{args.reference_trials}-trial random search: best {best:.4f}, target {target:.4f}")
    print(f"budget: {args.trials} trials of up to 20 epochs per run, seeds 0..{args.seeds - 1}")
    print(f"\n{'method':24} {'mean epochs to target':>22} {'x random':>9}  per seed")
    rows: dict[str, list[tuple[int | None, int]]] = {}
    for method in args.methods:
        runs = []
        for seed in range(args.seeds):
            curves = _in_subprocess(method, args.trials, seed)
            runs.append((None, 0) if isinstance(curves, str) else epochs_to_target(curves, target))
            if isinstance(curves, str):
                print(f"  {method} seed {seed} failed: {curves}")
        rows[method] = runs
    baseline = None
    for method, runs in rows.items():
        # A run that never reached the target counts its whole budget (a lower bound).
        spent = [hit if hit is not None else total for hit, total in runs]
        mean = statistics.mean(spent)
        if method == "optisweep random":
            baseline = mean
        ratio = f"{mean / baseline:.2f}" if baseline else "-"
        cells = " ".join(str(hit) if hit is not None else f"({total})" for hit, total in runs)
        print(f"{method:24} {mean:22.1f} {ratio:>9}  {cells}")


if __name__ == "__main__":
    main()
