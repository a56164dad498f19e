"""The dashboard's query endpoints, on both databases, against a real sweep."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import pytest

from optisweep.service.dashboard import pages
from optisweep.service.dashboard.downsample import lttb
from tests.service.conftest import LiveAPI

SPEC: dict[str, Any] = {
    "name": "dashboard-api",
    "workload": {"name": "rosenbrock", "epochs": 14, "steps_per_epoch": 5},
    "space": {
        "optimizers": ["adam", "momentum", "sgd"],
        "lr": {"low": 1e-4, "high": 1e-2, "log": True},
        "beta1": {"low": 0.8, "high": 0.95},
    },
    "search": {"algorithm": "random", "num_trials": 12, "seed": 4},
    "objective": {"metric": "val_loss", "mode": "min"},
}


@pytest.fixture(scope="module")
def sweep(live_api: LiveAPI) -> dict[str, Any]:
    done = live_api.wait(live_api.submit(SPEC)["id"])
    assert done["status"] == "completed", done
    return done


def test_curves_are_downsampled_to_at_most_max_points(
    live_api: LiveAPI, sweep: dict[str, Any]
) -> None:
    full = live_api.client.get(f"/sweeps/{sweep['id']}/curves", params={"max_points": 1000})
    assert full.status_code == 200
    body = full.json()
    assert body["metric"] == "val_loss"
    assert body["total_trials"] == 12
    assert len(body["curves"]) == 12
    short = live_api.client.get(
        f"/sweeps/{sweep['id']}/curves", params={"max_points": 10, "limit": 3}
    ).json()["curves"]
    families = {c["optimizer"] for c in body["curves"] if c["status"] == "completed"}
    # The 3 best trials, plus the best of every family not among them.
    assert 3 <= len(short) <= 3 + len(families)
    assert {c["optimizer"] for c in short if c["best_in_family"]} == families
    by_id = {c["trial_id"]: c for c in body["curves"]}
    for curve in short:
        assert len(curve["steps"]) <= 10
        whole = by_id[curve["trial_id"]]
        assert curve["steps"][0] == whole["steps"][0]
        assert curve["steps"][-1] == whole["steps"][-1]
        assert set(curve["steps"]) <= set(whole["steps"])


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("curves", {"max_points": 2}, "max_points"),
        ("curves", {"limit": 0}, "limit"),
        ("curves", {"max_points": "many"}, "max_points"),
        ("parallel", {"limit": 100_000}, "limit"),
        ("importance", {"max_trials": 1}, "max_trials"),
        ("importance", {"optimizer": "sophia"}, "optimizer"),
    ],
)
def test_bad_dashboard_parameters_are_422(
    live_api: LiveAPI, sweep: dict[str, Any], path: str, params: dict[str, Any], field: str
) -> None:
    response = live_api.client.get(f"/sweeps/{sweep['id']}/{path}", params=params)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["query", field]


@pytest.mark.parametrize(
    "path", ["curves", "lr-sensitivity", "best-so-far", "parallel", "importance", "trials.csv"]
)
def test_an_unknown_sweep_is_404(live_api: LiveAPI, path: str) -> None:
    response = live_api.client.get(f"/sweeps/999999/{path}")
    assert response.status_code == 404
    assert response.json() == {"detail": "sweep 999999 not found"}


def test_lr_sensitivity_and_parallel_hold_every_ranked_trial(
    live_api: LiveAPI, sweep: dict[str, Any]
) -> None:
    trials = [t for t in live_api.trials(sweep["id"]) if t["status"] in ("completed", "stopped")]
    series = live_api.client.get(f"/sweeps/{sweep['id']}/lr-sensitivity").json()
    points = {
        trial_id: (family["optimizer"], x, y)
        for family in series["families"]
        for trial_id, x, y in zip(family["trial_ids"], family["x"], family["y"], strict=True)
    }
    assert points == {
        t["id"]: (t["optimizer"], t["hyperparameters"]["lr"], t["objective"]) for t in trials
    }
    for family in series["families"]:
        assert family["x"] == sorted(family["x"])
    rows = live_api.client.get(f"/sweeps/{sweep['id']}/parallel").json()["rows"]
    assert [r["objective"] for r in rows] == sorted(t["objective"] for t in trials)
    for row in rows:
        if row["optimizer"] == "sgd":
            assert row["beta1"] is None
        else:
            assert 0.8 <= row["beta1"] <= 0.95


def test_best_so_far_follows_each_familys_reported_epochs(
    live_api: LiveAPI, sweep: dict[str, Any]
) -> None:
    series = live_api.client.get(f"/sweeps/{sweep['id']}/best-so-far").json()
    trials = live_api.trials(sweep["id"])
    assert {f["optimizer"] for f in series["families"]} == {t["optimizer"] for t in trials}
    for family in series["families"]:
        own = [t for t in trials if t["optimizer"] == family["optimizer"]]
        assert family["x"] == sorted(family["x"])
        assert family["y"] == sorted(family["y"], reverse=True)  # val_loss: lower is better
        # The line runs to every epoch the family's trials ran (no retries here), and ends at
        # the family's best value in any epoch, which its trial reached.
        assert family["x"][-1] == sum(t["epochs_run"] for t in own)
        assert family["y"][-1] == min(t["best_objective"] for t in own)
        for trial_id, value in zip(family["trial_ids"], family["y"], strict=True):
            curves = live_api.client.get(f"/trials/{trial_id}/metrics").json()["series"]
            (losses,) = [s["values"] for s in curves if s["name"] == "val_loss"]
            assert value in losses


@pytest.mark.parametrize("method", ["ped-anova", "fanova"])
def test_importance_across_and_within_families(
    live_api: LiveAPI, sweep: dict[str, Any], method: str
) -> None:
    path = f"/sweeps/{sweep['id']}/importance"
    found = live_api.client.get(path, params={"method": method}).json()
    assert (found["method"], found["optimizer"]) == (method, None)
    assert found["trials"] >= 4
    # sgd has no beta1: across families it would only stand in for the family, so it is left out.
    assert set(found["importances"]) == {"optimizer", "lr"}
    assert sum(found["importances"].values()) == pytest.approx(1.0, abs=1e-6)

    ranked = [t for t in live_api.trials(sweep["id"]) if t["status"] in ("completed", "stopped")]
    counts = {f: sum(t["optimizer"] == f for t in ranked) for f in ("adam", "momentum", "sgd")}
    family = max(counts, key=lambda f: counts[f])
    assert counts[family] >= 4  # 12 trials over 3 families
    within = live_api.client.get(path, params={"method": method, "optimizer": family}).json()
    assert (within["optimizer"], within["trials"]) == (family, counts[family])
    # Within a family: its lr and the betas it has that varied (beta1; beta2 kept its default).
    assert set(within["importances"]) == ({"lr"} if family == "sgd" else {"lr", "beta1"})
    assert sum(within["importances"].values()) == pytest.approx(1.0, abs=1e-6)


def test_trials_export_as_csv(live_api: LiveAPI, sweep: dict[str, Any]) -> None:
    response = live_api.client.get(f"/sweeps/{sweep['id']}/trials.csv")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    trials = {t["id"]: t for t in live_api.trials(sweep["id"])}
    assert len(rows) == len(trials) == 12
    for row in rows:
        trial = trials[int(row["id"])]
        assert row["optimizer"] == trial["optimizer"]
        assert row["status"] == trial["status"]
        assert float(row["lr"]) == trial["hyperparameters"]["lr"]


def test_a_yaml_spec_parses_to_json(live_api: LiveAPI) -> None:
    text = "name: x\nspace: {lr: {low: 1.0e-3, high: 0.1}}\n"
    response = live_api.client.post(
        "/specs/parse", content=text, headers={"content-type": "text/plain"}
    )
    assert response.json() == {"name": "x", "space": {"lr": {"low": 1e-3, "high": 0.1}}}
    bad = live_api.client.post(
        "/specs/parse", content="name: [", headers={"content-type": "text/plain"}
    )
    assert bad.status_code == 422
    assert "not valid YAML or JSON" in bad.json()["detail"][0]["msg"]


def test_the_dashboard_pages_and_echarts_are_served(
    live_api: LiveAPI, finished_grid: dict[str, Any]
) -> None:
    import httpx

    trial = live_api.trials(finished_grid["id"])[0]
    paths = ("/", f"/sweeps/{finished_grid['id']}", f"/trials/{trial['id']}")
    token = live_api.client.headers["Authorization"].removeprefix("Bearer ")
    with httpx.Client(base_url=live_api.url, timeout=30) as browser:
        for path in paths:  # no session: to the sign-in page, and back after it
            away = browser.get(path)
            assert (away.status_code, away.headers["location"]) == (
                303,
                f"/login?next={path.replace('/', '%2F')}",
            )
        assert browser.get("/login").status_code == 200
        signed_in = browser.post("/api/v1/session", json={"token": token})
        assert signed_in.status_code == 200, signed_in.text
        cookie = signed_in.headers["set-cookie"].lower()
        assert "httponly" in cookie
        assert "samesite=strict" in cookie
        for path in paths:
            page = browser.get(path)
            assert page.status_code == 200
            assert "/static/app.js" in page.text
            assert "script-src 'self'" in page.headers["content-security-policy"]
        assert browser.get("/sweeps/999999").status_code == 404
        docs = browser.get("/docs")  # Swagger UI, with its own inline script: no CSP of ours
        assert (docs.status_code, "content-security-policy" in docs.headers) == (200, False)
        assert "/api/v1/openapi.json" in docs.text
        # Signed in by cookie, a change needs the session's CSRF token.
        csrf = browser.get("/api/v1/session").json()["csrf_token"]
        refused = browser.post("/api/v1/specs/parse", content="a: 1")
        assert refused.status_code == 403
        assert "X-CSRF-Token" in refused.json()["detail"]
        parsed = browser.post("/api/v1/specs/parse", content="a: 1", headers={"X-CSRF-Token": csrf})
        assert parsed.json() == {"a": 1}
    echarts = httpx.get(live_api.url + "/static/vendor/echarts.min.js", timeout=30)
    assert echarts.status_code == 200
    assert echarts.headers["content-type"].startswith("text/javascript")
    assert len(echarts.content) > 500_000  # the full library (parallel coordinates included)
    assert b"getInstanceByDom" in echarts.content


def test_a_missing_echarts_install_says_how_to_fix_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(pages, "ECHARTS_JS", tmp_path / "echarts.min.js")
    missing = pages.echarts_asset()
    assert missing.status_code == 503
    assert b"pip install -e ." in missing.body


def test_lttb_keeps_the_ends_and_the_peaks() -> None:
    xs = list(range(1000))
    ys = [math.sin(x / 40) + (5.0 if x == 500 else 0.0) for x in xs]
    kept_x, kept_y = lttb(xs, ys, 60)
    assert kept_y[kept_x.index(500)] == ys[500]
    assert len(kept_x) == 60
    assert (kept_x[0], kept_x[-1]) == (0, 999)
    assert 500 in kept_x  # the spike survives
    assert kept_x == sorted(kept_x)
    assert lttb([1, 2], [3.0, 4.0], 10) == ([1.0, 2.0], [3.0, 4.0])
    with pytest.raises(ValueError, match="at least 3"):
        lttb(xs, ys, 2)
