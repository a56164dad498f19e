"""The comparison page in a real Chromium against a real `optisweep serve`: three sweeps over
three workloads picked on the sweeps page, their performance profiles drawn, each sweep's
targets and families shown, and bad input shown as the API words it."""

from __future__ import annotations

from typing import Any

import httpx
from playwright.sync_api import Page, expect

from tests.conftest import wait_until
from tests.e2e.conftest import Server
from tests.e2e.test_dashboard import ARTIFACTS, browser, page, series_of, sign_in, wait_for

__all__ = ["browser", "page"]  # the Chromium fixtures, shared with the dashboard's tests


def _spec(workload: str, metric: str, mode: str, lrs: list[float], **extra: Any) -> dict[str, Any]:
    return {
        "name": f"compare-{workload}",
        "workload": {"name": workload, "epochs": 2, **extra},
        "space": {"optimizers": ["sgd", "adam"], "lr": {"values": lrs}},
        "search": {"algorithm": "grid"},
        "objective": {"metric": metric, "mode": mode},
    }


SPECS = [
    _spec("mlp-digits", "val_accuracy", "max", [1e-2, 1e-1]),
    _spec("cnn-digits", "val_accuracy", "max", [5e-2]),
    _spec("rosenbrock", "val_loss", "min", [1e-2, 1e-1], steps_per_epoch=20),
]


def test_three_workloads_compared_from_the_sweeps_page(shared_server: Server, page: Page) -> None:
    server = shared_server
    api = f"{server.url}/api/v1"
    ids = [
        httpx.post(f"{api}/sweeps", json=spec, timeout=120, headers=server.headers).json()["id"]
        for spec in SPECS
    ]

    def finished() -> bool:
        statuses = [
            httpx.get(f"{api}/sweeps/{i}", timeout=30, headers=server.headers).json()["status"]
            for i in ids
        ]
        return all(status == "completed" for status in statuses)

    wait_until(finished, timeout=240, what="the three sweeps to finish")
    found = httpx.get(
        f"{api}/comparisons", params={"sweeps": ",".join(map(str, ids))},
        timeout=30, headers=server.headers,
    ).json()  # fmt: skip

    sign_in(page, server)
    for sweep_id in ids:
        page.locator(f"#sweeps tr[data-sweep='{sweep_id}'] input.pick").check()
    page.locator("#compare").click()
    page.wait_for_url(f"{server.url}/compare?sweeps={','.join(map(str, ids))}")
    expect(page.locator("#measure-text")).to_have_text("by seconds to target")

    rows = page.locator("#profiles tbody tr")
    expect(rows).to_have_count(len(found["profiles"]))
    for i, profile in enumerate(found["profiles"]):
        expect(rows.nth(i)).to_have_attribute("data-optimizer", profile["optimizer"])
        expect(rows.nth(i).locator("td").nth(1)).to_have_text(f"{profile['area']:.3f}")
    wait_for(page, "document.getElementById('chart-profile').dataset.drawn === '1'")
    last = "s.data[s.data.length - 1]"
    drawn = page.evaluate(
        f"{series_of('chart-profile')}.map((s) => [s.name, s.data.length, {last}])"
    )
    assert [name for name, _, _ in drawn] == [p["optimizer"] for p in found["profiles"]]
    for (_, points, (_, _, share)), profile in zip(drawn, found["profiles"], strict=True):
        assert points == len(found["taus"])
        assert share == profile["shares"][-1]  # the true share, the tooltip's

    sections = page.locator("#per-sweep .sweep")
    expect(sections).to_have_count(3)
    for i, sweep in enumerate(found["sweeps"]):
        section = sections.nth(i)
        expect(section).to_have_attribute("data-sweep", str(sweep["sweep_id"]))
        expect(section.locator("h2")).to_contain_text(f"{sweep['workload']}: {sweep['metric']}")
        expect(section.locator("p")).to_have_text(f"target: {sweep['target_rule']}")
        families = [r["optimizer"] for r in found["results"] if r["sweep_id"] == sweep["sweep_id"]]
        expect(section.locator("tbody tr")).to_have_count(len(families))
    page.screenshot(path=str(ARTIFACTS / "dashboard-compare.png"), full_page=True)

    # A target no trial reaches: every family's profile is 0 everywhere, equal; each is drawn
    # a little apart from the others (and dashed apart), so each line shows.
    page.goto(f"{server.url}/compare?sweeps={ids[2]}&target=val_loss%3C%3D-1")
    wait_for(page, "document.getElementById('chart-profile').dataset.drawn === '1'")
    flat = page.evaluate(
        f"{series_of('chart-profile')}.map((s) => [s.data[0][1], s.data[0][2], s.lineStyle.type])"
    )
    assert len(flat) >= 2
    assert {share for _, share, _ in flat} == {0}
    assert len({shown for shown, _, _ in flat}) == len(flat)
    assert len({dash for _, _, dash in flat}) == min(len(flat), 3)

    page.goto(f"{server.url}/compare?sweeps={ids[0]},999999")
    expect(page.locator("#errors")).to_contain_text("sweep 999999 not found")
    page.goto(f"{server.url}/compare?sweeps={ids[0]},{ids[2]}&target=val_accuracy%3E%3D0.9")
    expect(page.locator("#errors li[data-field='target']")).to_contain_text(
        f"sweep {ids[2]} (rosenbrock) reports none of val_accuracy"
    )
