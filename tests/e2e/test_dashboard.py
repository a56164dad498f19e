"""The web dashboard in a real Chromium (Debian's package, driven by Playwright) against a real
`optisweep serve`: a sweep page that fills in live, a trial page, and a bad spec's errors."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.conftest import REPO_ROOT, wait_until
from tests.e2e.conftest import Server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = REPO_ROOT / "test-artifacts"
SPEC: dict[str, Any] = {
    "name": "dashboard-e2e",
    "workload": {"name": "rosenbrock", "epochs": 4, "steps_per_epoch": 20},
    "space": {
        "optimizers": ["adam", "momentum"],
        "lr": {"low": 1e-4, "high": 3e-3, "log": True},
        "beta1": {"low": 0.8, "high": 0.95},
        "clip_norm": {"values": [None, 10.0]},
        "schedule": {
            "kind": {"values": ["constant", "cosine"]},
            "per": "step",
            "warmup_steps": {"low": 0, "high": 30},
        },
    },
    "search": {"algorithm": "random", "num_trials": 8, "seed": 2},
    "objective": {"metric": "val_loss", "mode": "min"},
}


def series_of(chart_id: str) -> str:
    """JavaScript for the series an ECharts chart draws in the element with this id."""
    return f"echarts.getInstanceByDom(document.getElementById('{chart_id}')).getOption().series"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium from /usr/bin/chromium (make test installs it)."""
    assert Path(CHROMIUM).exists(), "chromium is missing: `make test` installs it (apt-get)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1800})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # The Content-Security-Policy refusing something (an inline script, say) is an error too.
    page.on(
        "console",
        lambda message: (
            errors.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    yield page
    context.close()
    assert errors == [], f"JavaScript errors: {errors}"


def wait_for(page: Page, expression: str, timeout: float = 30.0) -> None:
    """Until ``expression`` is true in the page. Playwright's wait_for_function compiles its
    predicate with eval, which the dashboard's Content-Security-Policy forbids."""
    wait_until(lambda: page.evaluate(expression), timeout=timeout, what=expression, every=0.1)


def sign_in(page: Page, server: Server) -> None:
    """Sign the browser in as the first start's admin, through its link."""
    page.goto(f"{server.url}/login#token={server.token}")
    page.wait_for_url(f"{server.url}/")


def test_the_sweep_page_shows_the_race_and_links_to_trials(
    shared_server: Server, page: Page
) -> None:
    server = shared_server
    api = f"{server.url}/api/v1"
    sweep = httpx.post(f"{api}/sweeps", json=SPEC, timeout=30, headers=server.headers).json()

    sign_in(page, server)
    page.goto(f"{server.url}/sweeps/{sweep['id']}")
    expect(page.locator("#title")).to_contain_text("dashboard-e2e")
    expect(page.locator("#status")).to_have_text("completed", timeout=120_000)
    expect(page.locator("#progress-text")).to_have_text("8 / 8", timeout=10_000)

    board = httpx.get(
        f"{api}/sweeps/{sweep['id']}/leaderboard", timeout=30, headers=server.headers
    ).json()
    rows = page.locator("#leaderboard tbody tr")
    expect(rows).to_have_count(len(board["entries"]), timeout=10_000)
    for i, entry in enumerate(board["entries"]):
        expect(rows.nth(i)).to_have_attribute("data-optimizer", entry["optimizer"])
        expect(rows.nth(i).locator("td").nth(4)).to_have_text(str(entry["trial"]["epochs_run"]))
    expect(page.locator("#board-statistics")).to_have_text(board["statistics"])
    # The optimizer report: one sentence per family, as the API words it.
    report = httpx.get(
        f"{api}/sweeps/{sweep['id']}/report", timeout=30, headers=server.headers
    ).json()
    lines = page.locator("#report-lines li")
    expect(lines).to_have_count(len(report["families"]))
    for i, family in enumerate(report["families"]):
        expect(lines.nth(i)).to_have_text(family["summary"])
    # First on the page, the verdict; every objective shown says which epoch it is; a finished
    # sweep has no Cancel and a bar in its ending's colour; its settings are the spec as YAML.
    expect(page.locator("#verdict")).to_have_text(report["verdict"])
    assert report["verdict"].startswith("Pick ")
    expect(page.locator("#board-objective")).to_have_text("val_loss (last epoch)")
    expect(page.locator("#trials-objective")).to_have_text("objective (last epoch)")
    expect(page.locator("#cancel")).to_be_hidden()
    expect(page.locator("#progress")).to_have_class("completed")
    page.locator("#settings summary").click()
    expect(page.locator("#spec-yaml")).to_contain_text("name: dashboard-e2e")
    assert "summary: last" in page.locator("#spec-yaml").text_content()
    icon = httpx.get(f"{server.url}/favicon.ico", timeout=30)
    assert icon.status_code == 200
    assert icon.headers["content-type"].startswith("image/svg+xml")

    # Every chart is drawn with the sweep's data: every trial's curve (one series per family and
    # one per family's best; a point is [epoch, value, trial id, trial number]), one lr series
    # per family.
    curves = httpx.get(
        f"{api}/sweeps/{sweep['id']}/curves", timeout=30, headers=server.headers
    ).json()["curves"]
    page.wait_for_selector("#chart-curves[data-drawn]")
    drawn_ids = (
        f"[...new Set({series_of('chart-curves')}"
        ".flatMap(s => s.data.map(point => point[2])).filter(id => id !== null))]"
    )
    # The page draws its charts once more after the sweep ends (their data may predate it).
    wait_for(page, f"{drawn_ids}.length === {len(curves)}", timeout=30)
    drawn = page.evaluate(drawn_ids)
    assert sorted(drawn) == sorted(c["trial_id"] for c in curves)
    families = {c["optimizer"] for c in curves if c["status"] in ("completed", "stopped")}
    lr_series = page.evaluate(f"{series_of('chart-lr')}.map(s => s.name)")
    # split by the schedule kind the sweep searches: "adam, cosine"
    assert {name.split(", ")[0] for name in lr_series} == families
    assert {name.split(", ")[1] for name in lr_series} <= {"constant", "cosine"}
    for chart in ("chart-best", "chart-parallel", "chart-importance"):
        page.wait_for_selector(f"#{chart}[data-drawn] canvas")
        # Importance is drawn while the sweep runs (maybe before any trial is done) and once
        # more after it ends: wait for that last drawing rather than read the first.
        wait_for(page, f"{series_of(chart)}.every(s => s.data.length > 0)", timeout=30)
        lengths = page.evaluate(f"{series_of(chart)}.map(s => s.data.length)")
        assert min(lengths, default=0) > 0, chart
    axes = page.evaluate(
        "echarts.getInstanceByDom(document.getElementById('chart-parallel'))"
        ".getOption().parallelAxis.map(a => a.name)"
    )
    assert axes == [  # a searched setting is an axis
        "family",
        "lr",
        "beta1",
        "beta2",
        "clip norm",
        "schedule",
        "warmup steps",
        "val_loss",
    ]
    # The lr and beta axes span what was searched; adam's fixed beta2 (0.999) a hair around
    # it, not padded out to 0.4..1.4.
    spans = page.evaluate(
        "echarts.getInstanceByDom(document.getElementById('chart-parallel'))"
        ".getOption().parallelAxis.slice(1, 4).map(a => [a.min, a.max])"
    )
    assert spans[0] == [1e-4, 3e-3]
    assert spans[1] == [0.8, 0.95]
    assert spans[2][0] < 0.999 < spans[2][1] <= 1.0
    expect(page.locator("#trials tbody tr")).to_have_count(8)
    # Importance within one family: the bars are that family's own hyperparameters.
    within = httpx.get(
        f"{api}/sweeps/{sweep['id']}/importance",
        params={"optimizer": "adam"},
        timeout=30,
        headers=server.headers,
    ).json()
    page.select_option("#importance-family", "adam")
    bars = (
        "echarts.getInstanceByDom(document.getElementById('chart-importance'))"
        ".getOption().yAxis[0].data"
    )
    expected = json.dumps(sorted(within["importances"]), separators=(",", ":"))  # as JS writes
    wait_for(page, f"JSON.stringify([...{bars}].sort()) === {expected!r}")
    assert within["optimizer"] == "adam"
    assert "optimizer" not in within["importances"]
    page.select_option("#importance-family", "")
    # Curves on a log y axis (losses spanning decades): the same trials, drawn again.
    page.select_option("#curves-scale", "log")
    axis = "echarts.getInstanceByDom(document.getElementById('chart-curves')).getOption().yAxis[0]"
    wait_for(page, f"{axis}.type === 'log'")
    redrawn = page.evaluate(
        f"[...new Set({series_of('chart-curves')}"
        ".flatMap(s => s.data.map(point => point[2])).filter(id => id !== null))]"
    )
    assert sorted(redrawn) == sorted(c["trial_id"] for c in curves)
    page.select_option("#curves-scale", "linear")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-sweep.png"), full_page=True)

    # Clicking a curve opens its trial: the mouse on the last point of a family's best curve.
    box = page.locator("#chart-curves").bounding_box()
    assert box is not None
    x, y = page.evaluate(
        "(() => { const chart = echarts.getInstanceByDom(document.getElementById('chart-curves'));"
        " const data = chart.getOption().series[0].data;"
        " return chart.convertToPixel('grid', data[data.length - 2].slice(0, 2)); })()"
    )
    page.mouse.move(box["x"] + x, box["y"] + y)
    page.mouse.click(box["x"] + x, box["y"] + y)
    # One trial number: the page's address is the trial's number in its sweep, whatever link
    # led there (a chart's point carries the trial's id).
    page.wait_for_url(re.compile(rf"/sweeps/{sweep['id']}/trials/\d+$"))
    number = int(page.url.rsplit("/", 1)[1])
    opened = httpx.get(
        f"{api}/sweeps/{sweep['id']}/trials/{number}", timeout=30, headers=server.headers
    ).json()
    assert opened["id"] in {c["trial_id"] for c in curves}
    page.go_back()

    best = board["entries"][0]["trial"]
    page.locator("#leaderboard tbody tr").first.locator("a").click()
    expect(page).to_have_url(f"{server.url}/sweeps/{sweep['id']}/trials/{best['number']}")
    expect(page.locator("#title")).to_contain_text(f"Sweep {sweep['id']}, trial {best['number']}")
    expect(page.locator('[data-fact="status"]')).to_have_text(best["status"])
    # Its status history: created, then each start and end the API recorded.
    events = httpx.get(
        f"{api}/trials/{best['id']}/events", timeout=30, headers=server.headers
    ).json()
    history = page.locator("#events tbody tr")
    expect(history).to_have_count(1 + len(events))
    statuses = ["created"] + [e["status"] for e in events]
    assert statuses[-2:] == ["running", "completed"]
    for i, status in enumerate(statuses):
        expect(history.nth(i)).to_have_attribute("data-status", status)
    expect(page.locator("#metric-val_loss[data-drawn] canvas").first).to_be_visible()
    metrics = httpx.get(
        f"{api}/trials/{best['id']}/metrics", timeout=30, headers=server.headers
    ).json()["series"]
    val_loss = next(series for series in metrics if series["name"] == "val_loss")
    points = page.evaluate(f"{series_of('metric-val_loss')}[0].data.map(point => point[0])")
    assert points == val_loss["steps"]
    page.screenshot(path=str(ARTIFACTS / "dashboard-trial.png"), full_page=True)

    page.goto(f"{server.url}/")
    listed = page.locator(f'#sweeps tr[data-sweep="{sweep["id"]}"]')
    expect(listed).to_contain_text("8 / 8")
    expect(listed.locator(".bar > div")).to_have_class("completed")  # coloured by its ending


def test_a_two_objective_sweep_shows_its_pareto_front(shared_server: Server, page: Page) -> None:
    server = shared_server
    api = f"{server.url}/api/v1"
    spec = {
        **SPEC,
        "name": "pareto-e2e",
        "workload": {"name": "rosenbrock", "epochs": 2, "steps_per_epoch": 10},
        "space": {
            "optimizers": ["adam", "momentum"],
            "lr": {"low": 1e-4, "high": 3e-3, "log": True},
        },
        "search": {"algorithm": "tpe", "num_trials": 8, "seed": 1},
        "objective": [
            {"metric": "val_loss", "mode": "min"},
            {"metric": "distance_to_optimum", "mode": "max"},
        ],
    }
    created = httpx.post(f"{api}/sweeps", json=spec, timeout=30, headers=server.headers)
    assert created.status_code == 201, created.text
    sweep = created.json()
    sign_in(page, server)
    page.goto(f"{server.url}/sweeps/{sweep['id']}")
    expect(page.locator("#status")).to_have_text("completed", timeout=120_000)
    board = httpx.get(
        f"{api}/sweeps/{sweep['id']}/leaderboard", timeout=30, headers=server.headers
    ).json()
    front = [point["trial_id"] for point in board["pareto_front"]]
    assert front
    # The front, joined in the order of the first objective, over every family's trials.
    drawn_front = f"{series_of('chart-pareto')}.at(-1).data.map(point => point[2])"
    wait_for(
        page, f"JSON.stringify({drawn_front}) === '{json.dumps(front, separators=(',', ':'))}'"
    )
    shown = page.evaluate(
        f"{series_of('chart-pareto')}.slice(0, -1).flatMap(s => s.data.map(point => point[2]))"
    )
    assert set(front) <= set(shown)
    assert page.locator("#pareto-card").is_visible()


def test_a_warm_started_scale_study_shows_where_its_trials_came_from_and_its_rule(
    shared_server: Server, page: Page
) -> None:
    """A scale study over the quadratic's dimension, warm-started from an earlier sweep: the
    page says what it learnt and from where (a trial's origin links to the earlier trial), and
    draws each family's best lr per size with the fitted rule and the prediction."""
    server = shared_server
    api = f"{server.url}/api/v1"
    base = {
        "workload": {"name": "quadratic", "epochs": 2, "steps_per_epoch": 5, "dim": 4},
        "space": {"optimizers": ["sgd", "adam"], "lr": {"low": 1e-3, "high": 1e-1, "log": True}},
        "search": {"algorithm": "random", "num_trials": 6, "seed": 4},
        "objective": {"metric": "val_loss", "mode": "min"},
    }
    earlier = httpx.post(
        f"{api}/sweeps", json={**base, "name": "earlier"}, timeout=30, headers=server.headers
    )
    assert earlier.status_code == 201, earlier.text
    source = earlier.json()["id"]
    wait_until(
        lambda: (
            httpx.get(f"{api}/sweeps/{source}", headers=server.headers).json()["status"]
            == "completed"
        ),
        timeout=120,
        what="the earlier sweep",
    )
    spec = {
        **base,
        "name": "scale-e2e",
        "search": {**base["search"], "num_trials": 4, "warm_start": {"sweeps": [source]}},
        "scale": {"field": "dim", "values": [2, 4, 8], "predict": 16},
    }
    created = httpx.post(f"{api}/sweeps", json=spec, timeout=30, headers=server.headers)
    assert created.status_code == 201, created.text
    sweep = created.json()
    sign_in(page, server)
    page.goto(f"{server.url}/sweeps/{sweep['id']}")
    expect(page.locator("#status")).to_have_text("completed", timeout=120_000)
    # A quarter of 4 configurations: the earlier best trained again first, at each of 3 sizes.
    expect(page.locator("#warm-start")).to_contain_text(f"sweep {source}'s 6 finished trials")
    trials = httpx.get(f"{api}/sweeps/{sweep['id']}/trials", headers=server.headers).json()
    origins = [t["origin"] for t in trials["items"]]
    assert origins[:3] == [origins[0]] * 3
    assert origins[0].startswith(f"sweep {source} trial ")
    assert origins[3:] == [None] * 9
    earlier_number = origins[0].rsplit(" ", 1)[1]
    links = page.locator("#trials a.origin")
    expect(links).to_have_count(3)
    assert links.first.get_attribute("href") == f"/sweeps/{source}/trials/{earlier_number}"
    expect(page.locator("#scale-card")).to_be_visible()
    page.wait_for_selector("#chart-scale[data-drawn] canvas")
    report = httpx.get(f"{api}/sweeps/{sweep['id']}/report", headers=server.headers).json()
    expect(page.locator("#scale-summary")).to_have_text(report["scale_study"]["summary"])
    bests = page.evaluate(
        f"{series_of('chart-scale')}.filter(s => s.type === 'scatter' && s.symbolSize === 9)"
        ".map(s => [s.name, s.data])"
    )
    expected = [
        [family["optimizer"], [[p["size"], p["best_lr"]] for p in family["points"]]]
        for family in report["scale_study"]["families"]
    ]
    assert bests == expected


def test_an_invalid_spec_shows_the_error_next_to_its_field(
    shared_server: Server, page: Page
) -> None:
    server = shared_server
    sign_in(page, server)
    bad = (
        "name: bad\nworkload: {name: rosenbrock, epochs: 5}\n"
        "space: {optimizers: [adam], lr: {low: 0.1, high: 0.01}}\n"
        "search: {algorithm: random, num_trials: 4}\n"
        "objective: {metric: val_loss, mode: min}\n"
    )

    def newest() -> int | None:
        items = httpx.get(
            f"{server.url}/api/v1/sweeps", params={"limit": 1}, timeout=30, headers=server.headers
        ).json()["items"]
        return items[0]["id"] if items else None

    before = newest()
    page.fill("#spec", bad)
    page.click("#submit button")
    error = page.locator('#submit-errors li[data-field^="space.lr"]')
    expect(error).to_contain_text("low must be <= high")
    assert newest() == before  # nothing was submitted

    page.fill("#spec", "name: [unclosed")
    page.click("#submit button")
    expect(page.locator("#submit-errors li")).to_contain_text("not valid YAML or JSON")

    page.fill("#spec", bad.replace("low: 0.1, high: 0.01", "low: 0.001, high: 0.01"))
    page.click("#submit button")
    expect(page.locator("#submit-result a")).to_have_text(re.compile(r"sweep \d+"))
    assert newest() != before


def test_pages_need_a_session_and_a_foreign_page_cannot_cancel(
    shared_server: Server, page: Page, browser: Browser
) -> None:
    """Without a session a page sends the browser to sign in (and back after); a form on
    another site posting to cancel is refused, and the sweep goes on."""
    server = shared_server
    spec = {**SPEC, "workload": {**SPEC["workload"], "epochs": 10_000}, "name": "long"}
    sweep = httpx.post(
        f"{server.url}/api/v1/sweeps", json=spec, timeout=30, headers=server.headers
    ).json()
    page.goto(f"{server.url}/sweeps/{sweep['id']}")
    page.wait_for_url(f"{server.url}/login?next=%2Fsweeps%2F{sweep['id']}")
    page.fill("#token", "osw_not-a-token")
    page.click("#sign-in button")
    expect(page.locator("#sign-in-error")).to_contain_text("unknown, expired or revoked")
    page.fill("#token", server.token)
    page.click("#sign-in button")
    page.wait_for_url(f"{server.url}/sweeps/{sweep['id']}")
    expect(page.locator("#title")).to_contain_text("long")
    # A page on another origin (another port is another site's origin) with a form that
    # posts to the cancel endpoint, submitted in the signed-in browser.
    attacker = page.context.new_page()
    attacker.set_content(
        f'<form id="f" method="post" action="{server.url}/api/v1/sweeps/{sweep["id"]}/cancel">'
        "</form>"
    )
    with attacker.expect_navigation():
        attacker.evaluate("document.getElementById('f').submit()")
    assert attacker.content().count("detail") == 1  # the API's refusal, as JSON
    status = httpx.get(
        f"{server.url}/api/v1/sweeps/{sweep['id']}", timeout=30, headers=server.headers
    ).json()["status"]
    assert status in ("pending", "running")
    # The page's own cancel button, with the session's CSRF token, does cancel it.
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#cancel")
    expect(page.locator("#status")).to_have_text("cancelled", timeout=30_000)
    page.click("#sign-out")
    page.wait_for_url(f"{server.url}/login")
    page.goto(f"{server.url}/")
    page.wait_for_url(f"{server.url}/login?next=%2F")


def test_a_sweep_without_a_finite_result_says_no_data(shared_server: Server, page: Page) -> None:
    """Every trial diverges: the leaderboard and the lr chart say there is no data (not an
    empty table under the single-seed note, not empty axes), and the verdict says why."""
    server = shared_server
    spec = {
        **SPEC,
        "name": "all-diverge",
        "workload": {"name": "rosenbrock", "epochs": 1, "steps_per_epoch": 5},
        "space": {"optimizers": ["sgd"], "lr": {"values": [1e6, 1e7]}},
        "search": {"algorithm": "grid"},
    }
    sweep = httpx.post(
        f"{server.url}/api/v1/sweeps", json=spec, timeout=30, headers=server.headers
    ).json()
    sign_in(page, server)
    page.goto(f"{server.url}/sweeps/{sweep['id']}")
    expect(page.locator("#status")).to_have_text("completed", timeout=120_000)
    expect(page.locator("#leaderboard tbody")).to_have_text(
        "no trial finished with a finite objective", timeout=10_000
    )
    expect(page.locator("#board-statistics")).to_have_text("")
    expect(page.locator("#verdict")).to_have_text(
        "No family has a trial with a finite val_loss (last epoch) yet."
    )
    expect(page.locator("#chart-lr")).to_have_attribute("data-empty", "1")
    expect(page.locator("#cancel")).to_be_hidden()
