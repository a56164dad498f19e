"""Does torch.compile of the population step pay for a pack, with inductor's cache cold or warm?

One pack of the reference sweep's first 32 trials (mlp-digits, 20 epochs, seven families),
trained twice in a fresh process, one thread: eager; ``PopulationOptimizer(compile=True)``
with an empty inductor cache (``TORCHINDUCTOR_CACHE_DIR`` a new folder); and again in a new
process with that cache filled, as a second sweep on the same machine would find it.

Run: ``python -m benchmarks.compile_pack``
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _child(compiled: bool) -> None:
    import torch

    from benchmarks.sweep_throughput import reference_spec, trial_specs
    from optisweep.optimizers import PopulationOptimizer
    from optisweep.workers.specs import MemberSpec, PackSpec
    from optisweep.workers.train import train_pack

    torch.set_num_threads(1)
    original = PopulationOptimizer.__init__

    def with_compile(self: PopulationOptimizer, *args: object, **kwargs: object) -> None:
        original(self, *args, **{**kwargs, "compile": compiled})  # type: ignore[arg-type]

    PopulationOptimizer.__init__ = with_compile  # type: ignore[method-assign]
    specs = trial_specs(reference_spec(64))[:32]
    members = [
        MemberSpec(optimizer=s["optimizer"], hyperparameters=s["hyperparameters"], seed=s["seed"])
        for s in specs
    ]
    spec = PackSpec(workload=specs[0]["workload"], members=members, data_seed=0, device="cpu")
    seconds = []
    for _ in range(2):
        start = time.perf_counter()
        train_pack(spec)
        seconds.append(time.perf_counter() - start)
    print(json.dumps(seconds))


def _run(compiled: bool, cache: str) -> list[float]:
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "benchmarks.compile_pack", "--child", str(int(compiled))]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True, cwd=REPO)
    result: list[float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    """Print the table."""
    if "--child" in sys.argv:
        _child(sys.argv[sys.argv.index("--child") + 1] == "1")
        return
    with tempfile.TemporaryDirectory() as cache:
        rows = [
            ("eager", _run(False, cache)),
            ("compiled, cold cache", _run(True, cache)),
            ("compiled, warm cache", _run(True, cache)),
        ]
    eager = rows[0][1][0]
    print("| step | first pack (s) | second pack, same process (s) | first / eager first |")
    print("| --- | ---: | ---: | ---: |")
    for name, (first, second) in rows:
        print(f"| {name} | {first:.2f} | {second:.2f} | {first / eager:.2f}x |")


if __name__ == "__main__":
    main()
