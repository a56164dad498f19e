"""optisweep from Python, notebook style (each ``# %%`` is a cell in Jupyter or VS Code).

Against `make run`'s server, from the repository's root:

    .venv/bin/python examples/client.py [SPEC]

It submits the reference sweep (64 trials of seven optimizer families on an MLP over
scikit-learn's digits), follows it with a progress bar, and reads the leaderboard, the
optimizer report and the learning curves as pandas DataFrames.
"""

# %%
import sys
from pathlib import Path

import optisweep

spec = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "digits-optimizers.yaml"
client = optisweep.Client()  # OPTISWEEP_URL or http://127.0.0.1:8000, with the CLI's token
sweep = client.submit(spec)
print(f"sweep {sweep.id}: {sweep.info.num_trials} trials; live at {sweep.url}")

# %%
sweep.wait(progress=True)
print(f"sweep {sweep.id} {sweep.info.status}")

# %%
board = sweep.leaderboard()
print(f"Leaderboard by {board.metric} ({board.mode}, each trial's {board.epoch} epoch):")
print(board.to_pandas()[["rank", "optimizer", "objective", "trial", "lr"]].to_string(index=False))

# %%
for family in sweep.report():
    print("-", family.summary)

# %%
curves = sweep.metrics(name=board.metric).to_pandas()
trials = sweep.trials().to_pandas()[["id", "optimizer"]].rename(columns={"id": "trial_id"})
per_epoch = curves.merge(trials, on="trial_id").groupby(["optimizer", "step"])["value"]
best = per_epoch.max() if board.mode == "max" else per_epoch.min()  # each family's best trial
print(f"{board.metric} per epoch, each family's best trial at it:")
print(best.unstack("step").round(3).to_string())
