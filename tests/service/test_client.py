"""The Python client against a real uvicorn server (SQLite and PostgreSQL): typed records that
mirror the API, every page followed, and typed errors that name what was wrong."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

import optisweep
from optisweep.service.accounts import schemas as account_schemas
from optisweep.service.client import accounts as account_records
from optisweep.service.client import records
from optisweep.service.sweeps import report as report_schemas
from optisweep.service.sweeps import scale as scale_schemas
from optisweep.service.sweeps import schemas as sweep_schemas
from optisweep.service.sweeps import warm_start as warm_schemas
from optisweep.service.trials import schemas as trial_schemas
from tests.service.conftest import LiveAPI, free_port
from tests.service.sweep_specs import EPOCHS, grid_spec

MIRRORS: list[tuple[type[BaseModel], type[BaseModel]]] = [
    (records.SweepInfo, sweep_schemas.SweepRead),
    (records.LrRange, sweep_schemas.LrRange),
    (records.Trial, trial_schemas.TrialRead),
    (records.LeaderboardEntry, trial_schemas.LeaderboardEntry),
    (records.Objective, trial_schemas.ObjectiveRead),
    (records.ParetoPoint, trial_schemas.ParetoPoint),
    (records.MetricPoint, trial_schemas.MetricPoint),
    (records.FamilyReport, report_schemas.FamilyReport),
    (records.WarmSource, warm_schemas.WarmSource),
    (records.WarmStart, warm_schemas.WarmStartRead),
    (records.ScalePoint, scale_schemas.ScalePoint),
    (records.ScaleFamily, scale_schemas.ScaleFamily),
    (records.ScaleStudy, scale_schemas.ScaleStudyRead),
    (account_records.UserInfo, account_schemas.UserRead),
    (account_records.TokenInfo, account_schemas.TokenRead),
    (account_records.NewToken, account_schemas.TokenCreated),
    (account_records.ProjectInfo, account_schemas.ProjectRead),
    (account_records.Me, account_schemas.Me),
    (account_records.Member, account_schemas.MemberRead),
    (account_records.NewUser, account_schemas.UserCreated),
]


@pytest.mark.parametrize(("record", "answer"), MIRRORS, ids=lambda model: model.__name__)
def test_each_record_has_the_fields_of_the_api_model_it_reads(
    record: type[BaseModel], answer: type[BaseModel]
) -> None:
    assert set(record.model_fields) == set(answer.model_fields)
    required_there = {name for name, field in answer.model_fields.items() if field.is_required()}
    required_here = {name for name, field in record.model_fields.items() if field.is_required()}
    assert required_here <= required_there  # nothing the server may leave out is required here


def _client(live_api: LiveAPI) -> optisweep.Client:
    token = live_api.client.headers["Authorization"].removeprefix("Bearer ")
    return optisweep.Client(live_api.url, token)


def test_a_finished_sweep_reads_as_typed_records_and_dataframes(
    live_api: LiveAPI, finished_grid: dict[str, Any]
) -> None:
    with _client(live_api) as client:
        sweep = client.sweep(finished_grid["id"])
        assert sweep.status == "completed"
        assert sweep.info.done == 9

        trials = sweep.trials()
        assert len(trials) == 9
        assert all(isinstance(trial, optisweep.Trial) for trial in trials)
        finite = [
            t.objective for t in trials if t.status == "completed" and t.objective is not None
        ]

        board = sweep.leaderboard()
        assert (board.metric, board.mode, board.epoch) == ("val_loss", "min", "last")
        assert [entry.rank for entry in board] == list(range(1, len(board) + 1))
        assert board[0].objective == min(finite)
        frame = board.to_pandas()
        assert list(frame["optimizer"]) == [entry.optimizer for entry in board]
        assert {"rank", "objective", "trial", "lr"} <= set(frame.columns)

        table = trials.to_pandas()
        assert sorted(table["lr"].unique()) == [1e-4, 1e-3, 0.5]
        assert len(table) == 9

        report = sweep.report(tolerance=0.05)
        assert report.tolerance == 0.05
        assert {family.optimizer for family in report} == {"sgd", "momentum", "adam"}
        assert all(family.summary for family in report)
        # the verdict first; the families in the leaderboard's order
        assert report.verdict.startswith(f"Pick {board[0].optimizer}") or (
            report.verdict.startswith("Pick ") and "within 5% of the leader" in report.verdict
        )
        assert [family.optimizer for family in report][: len(board)] == [
            entry.optimizer for entry in board
        ]


def test_a_sweeps_metrics_are_every_value_each_trial_reported(
    live_api: LiveAPI, finished_grid: dict[str, Any]
) -> None:
    with _client(live_api) as client:
        sweep = client.sweep(finished_grid["id"])
        points = sweep.metrics()
        expected = set()
        for trial in sweep.trials():
            for series in client.request("GET", f"/trials/{trial.id}/metrics")["series"]:
                steps = zip(series["steps"], series["values"], strict=True)
                expected |= {(trial.id, series["name"], step, _same(v)) for step, v in steps}
        got = [(p.trial_id, p.name, p.step, _same(p.value)) for p in points]
        assert len(got) == len(set(got))  # nothing twice across pages
        assert set(got) == expected
        assert len(got) >= 9 * EPOCHS * 2
        losses = sweep.metrics(name="val_loss")
        assert {p.name for p in losses} == {"val_loss"}
        assert len(losses) == sum(1 for p in points if p.name == "val_loss")
        frame = losses.to_pandas()
        assert list(frame.columns) == ["trial_id", "name", "step", "value"]


def _same(value: float | str) -> float | str:
    """A value that compares equal to itself: NaN as text (diverged trials report NaN)."""
    return value if value == value else "NaN"


def test_metric_pages_follow_the_cursor_and_a_bad_cursor_is_a_422(
    live_api: LiveAPI, finished_grid: dict[str, Any]
) -> None:
    path = f"/sweeps/{finished_grid['id']}/metrics"
    every = live_api.client.get(path).json()["items"]
    paged, cursor = [], None
    while True:
        params = {"limit": 7, **({"cursor": cursor} if cursor else {})}
        page = live_api.client.get(path, params=params).json()
        paged += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert paged == every
    bad = live_api.client.get(path, params={"cursor": "not-ours"})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["query", "cursor"]
    assert live_api.client.get("/sweeps/999999/metrics").status_code == 404


def test_submit_follow_and_list_from_python(live_api: LiveAPI) -> None:
    with _client(live_api) as client:
        sweep = client.submit(grid_spec(name="from-python"))
        assert sweep.info.num_trials == 9
        assert sweep.url == f"{live_api.url}/sweeps/{sweep.id}"
        final = sweep.wait(progress=False, poll_seconds=0.2, timeout=180)
        assert final.status == "completed"
        assert final.done == 9
        newest = client.sweeps(limit=1)
        assert [info.id for info in newest] == [sweep.id]
        assert len(client.sweeps()) >= 2  # every page, the session's other sweeps included
        with pytest.raises(optisweep.ConflictError, match="already completed"):
            sweep.cancel()


def test_errors_are_typed_and_name_the_field(live_api: LiveAPI, tmp_path: Any) -> None:
    with _client(live_api) as client:
        bad = grid_spec(space={"optimizers": ["sgd"], "lr": {"low": 0.1, "high": 0.01}})
        with pytest.raises(optisweep.InvalidInputError) as refused:
            client.submit(bad)
        assert refused.value.status_code == 422
        assert refused.value.field == "space.lr"
        assert "low must be <= high" in str(refused.value)
        assert refused.value.exit_code == 2

        with pytest.raises(optisweep.NotFoundError, match="sweep 999999 not found"):
            client.sweep(999999)

        missing = tmp_path / "nope.yaml"
        with pytest.raises(optisweep.InvalidInputError, match=r"nope\.yaml") as unread:
            client.submit(missing)
        assert unread.value.status_code is None  # refused here, before any request
        unbalanced = tmp_path / "bad.yaml"
        unbalanced.write_text("name: [unclosed\n")
        with pytest.raises(optisweep.InvalidInputError, match="not valid YAML"):
            client.submit(unbalanced)

    with optisweep.Client(live_api.url, "os_not-a-token") as stranger:
        with pytest.raises(optisweep.NotSignedInError) as unsigned:
            stranger.me()
        assert unsigned.value.status_code == 401
    nobody = optisweep.Client(f"http://127.0.0.1:{free_port()}")
    with nobody, pytest.raises(optisweep.ServerUnreachableError, match="no optisweep server"):
        nobody.sweeps()
