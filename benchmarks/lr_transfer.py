"""Does a scale study's rule predict the best learning rate at a size it never trained?

For each case, one scale study (``scale``: a grid of learning rates per family, every one
trained at each of three sizes) predicts each family's best lr at a held-out size; then a grid
sweep at that size alone measures its good-lr basin (the report's: the lrs within 2% of the
best). The prediction "lands" when it lies inside that measured basin. The study fits lr*, the
centre of each size's basin; the table also shows what a rule fitted to each size's single best
lr would have predicted (``argmax rule``), the estimator it replaced.

Cases: mlp-digits at hidden widths 32, 64, 128, held out 256 (20 epochs, batch 64, sgd and
adam); char-lm (one layer, context 32) at d_model 16, 32, 64, held out 128 (adam).

Run: ``.venv/bin/python -m benchmarks.lr_transfer [--cases mlp-digits char-lm]``
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import tempfile
import time
from typing import Any

CASES: dict[str, dict[str, Any]] = {
    "mlp-digits": {
        "workload": {"name": "mlp-digits", "epochs": 20, "batch_size": 64},
        "field": "hidden",
        "sizes": [32, 64, 128],
        "held_out": 256,
        "objective": {"metric": "val_accuracy", "mode": "max"},
        "optimizers": ["sgd", "adam"],
        "lrs": [round(10 ** (-4 + k / 4), 8) for k in range(17)],  # 1e-4 .. 1, 4 per decade
    },
    "char-lm": {
        "workload": {
            "name": "char-lm",
            "epochs": 3,
            "batch_size": 32,
            "context": 32,
            "layers": 1,
            "heads": 2,
            "train_sequences": 512,
            "val_sequences": 64,
        },
        "field": "d_model",
        "sizes": [16, 32, 64],
        "held_out": 128,
        "objective": {"metric": "val_loss", "mode": "min"},
        "optimizers": ["adam"],
        "lrs": [round(10 ** (-4 + k / 4), 8) for k in range(14)],  # 1e-4 .. 0.18
    },
}


def _spec(case: dict[str, Any], name: str, *, scale: bool) -> dict[str, Any]:
    workload = dict(case["workload"])
    if not scale:
        workload[case["field"]] = case["held_out"]
    spec: dict[str, Any] = {
        "name": name,
        "workload": workload,
        "space": {"optimizers": case["optimizers"], "lr": {"values": case["lrs"]}},
        "search": {"algorithm": "grid"},
        "objective": case["objective"],
    }
    if scale:
        spec["scale"] = {
            "field": case["field"],
            "values": case["sizes"],
            "predict": case["held_out"],
        }
    return spec


def run_case(case: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], float]:
    """The scale study's report and the held-out sweep's (a local Ray, the real controller,
    SQLite), and the seconds both took."""
    import ray

    from optisweep.service.controller.loop import Controller
    from optisweep.service.db.migrate import upgrade_engine
    from optisweep.service.db.session import make_engine, make_sessionmaker
    from optisweep.service.sweeps.models import Sweep
    from optisweep.service.sweeps.report import optimizer_report
    from optisweep.service.sweeps.schemas import SweepCreate
    from optisweep.service.sweeps.service import submit_sweep

    started = time.perf_counter()
    reports = []
    with tempfile.TemporaryDirectory() as folder:
        engine = make_engine(f"sqlite:///{folder}/transfer.db")
        upgrade_engine(engine)
        sessions = make_sessionmaker(engine)
        for scale in (True, False):
            spec = SweepCreate.model_validate(_spec(case, "transfer", scale=scale))
            with sessions.begin() as session:
                sweep_id = submit_sweep(session, spec, max_trials=100_000, claimed_by="b").id
            Controller(
                sessions, max_trials=100_000, controller_id="b", sweep_id=sweep_id
            ).run_sweep(sweep_id)
            with sessions() as session:
                sweep = session.get(Sweep, sweep_id)
                assert sweep is not None
                reports.append(optimizer_report(session, sweep).model_dump(mode="json"))
        engine.dispose()
    ray.shutdown()
    return reports[0], reports[1], time.perf_counter() - started


def _argmax_rule(points: list[dict[str, Any]], size: float) -> float:
    """The lr a rule fitted to each size's single best lr predicts at ``size``."""
    from scipy import stats

    fit = stats.linregress(
        [math.log(p["size"]) for p in points], [math.log(p["best_lr"]) for p in points]
    )
    return math.exp(fit.intercept + fit.slope * math.log(size))


def main() -> None:
    """Each case: the rule, its prediction, the measured basin at the held-out size; a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    args = parser.parse_args()
    import ray

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, CPU only")
    header = (
        f"{'case':11} {'family':7} {'slope [90%]':>20} {'predicted lr [90%]':>30} "
        f"{'argmax rule':>11} {'best lr':>9} {'measured basin':>20}  lands (argmax rule)"
    )
    rows = []
    for name in args.cases:
        case = CASES[name]
        ray.init(address="local", include_dashboard=False, log_to_driver=False)
        study, held, seconds = run_case(case)
        print(f"{name}: {seconds:.0f} s; {study['scale_study']['summary']}")
        measured = {family["optimizer"]: family for family in held["families"]}
        for family in study["scale_study"]["families"]:
            at = measured[family["optimizer"]]
            predicted = family["predicted_lr"]
            low, high = at["basin_low"], at["basin_high"]
            lands = low is not None and low <= predicted <= high
            argmax = _argmax_rule(family["points"], case["held_out"])
            argmax_lands = low is not None and low <= argmax <= high
            slope = f"{family['slope']:.2f} [{family['slope_low']:.2f}, {family['slope_high']:.2f}]"
            interval = f"{family['interval_low']:.2g}..{family['interval_high']:.2g}"
            rows.append(
                f"{name:11} {family['optimizer']:7} {slope:>20} "
                f"{predicted:>9.3g} [{interval:>18}] {argmax:>11.3g} {at['best_lr']:>9.3g} "
                f"{f'{low:.3g}..{high:.3g}':>20}  {'yes' if lands else 'no'} "
                f"({'yes' if argmax_lands else 'no'})"
            )
    print()
    print(header)
    for row in rows:
        print(row)


if __name__ == "__main__":
    main()
