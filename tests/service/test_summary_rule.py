"""One meaning per number: a sweep's ``objective.summary`` (its last epoch, the default, or its
best) is every trial's objective, and the leaderboard, the report, the comparison and the CSV
show that one value, each saying which it is."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from tests.service.conftest import LiveAPI


def _spec(summary: str | None) -> dict[str, Any]:
    objective: dict[str, Any] = {"metric": "val_loss", "mode": "min"}
    if summary is not None:
        objective["summary"] = summary
    return {
        "name": f"summary-{summary}",
        # momentum 0.98 oscillates on the quadratic: its best epoch is not always its last
        "workload": {"name": "quadratic", "epochs": 6, "steps_per_epoch": 10},
        "space": {
            "optimizers": ["sgd", "momentum"],
            "lr": {"values": [1e-4, 3e-4]},
            "overrides": {"momentum": {"momentum": 0.98}},
        },
        "search": {"algorithm": "grid"},
        "objective": objective,
    }


def _losses(live_api: LiveAPI, trial_id: int) -> list[float]:
    found = live_api.client.get(f"/trials/{trial_id}/metrics").json()["series"]
    (series,) = [s for s in found if s["name"] == "val_loss"]
    return [value for _, value in sorted(zip(series["steps"], series["values"], strict=True))]


SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
"""On SQLite only, to keep `make test` short: the rule is the recorder's, not the database's
(non-finite values on both databases: test_response_schema.py)."""


@SQLITE
@pytest.mark.parametrize("summary", [None, "best"])
def test_every_view_shows_the_one_value_the_sweeps_summary_rule_gives(
    live_api: LiveAPI, summary: str | None
) -> None:
    rule = summary or "last"
    sweep = live_api.wait(live_api.submit(_spec(summary))["id"])
    assert sweep["status"] == "completed", sweep
    assert sweep["spec"]["objective"]["summary"] == rule  # the default, stated
    every = live_api.trials(sweep["id"])
    trials = [t for t in every if t["status"] == "completed"]  # the ranked ones
    assert len(trials) >= 3
    differ = False
    for trial in trials:
        losses = _losses(live_api, trial["id"])
        expected = losses[-1] if rule == "last" else min(losses)
        assert trial["objective"] == pytest.approx(expected, rel=1e-12), trial["number"]
        differ |= min(losses) < losses[-1]
    assert differ  # some trial's best epoch is not its last: the rule decides its value

    by_family = {
        family: min(t["objective"] for t in trials if t["optimizer"] == family)
        for family in ("sgd", "momentum")
    }
    board = live_api.client.get(f"/sweeps/{sweep['id']}/leaderboard").json()
    assert board["epoch"] == rule
    assert {e["optimizer"]: e["trial"]["objective"] for e in board["entries"]} == by_family
    assert [e["optimizer"] for e in board["entries"]] == sorted(by_family, key=by_family.get)
    report = live_api.client.get(f"/sweeps/{sweep['id']}/report").json()
    assert report["epoch"] == rule
    assert {f["optimizer"]: f["best_objective"] for f in report["families"]} == by_family
    compared = live_api.client.get(f"/comparisons?sweeps={sweep['id']}").json()
    assert compared["sweeps"][0]["epoch"] == rule
    assert {r["optimizer"]: r["best_objective"] for r in compared["results"]} == by_family
    text = live_api.client.get(f"/sweeps/{sweep['id']}/trials.csv").text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {row["objective_epoch"] for row in rows} == {rule}
    assert sorted(float(row["objective"]) for row in rows) == sorted(t["objective"] for t in trials)
