"""The optional parts are extras: without one installed, what needs it says which to install."""

from __future__ import annotations

import sys

import pytest
from sqlalchemy.exc import ArgumentError

from optisweep.service.db.session import make_engine
from optisweep.service.errors import SpecError
from optisweep.service.sweeps.schemas import SweepCreate
from optisweep.service.sweeps.validation import check_sweep


def test_a_postgresql_url_without_its_driver_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in [m for m in sys.modules if m == "psycopg" or m.startswith("psycopg.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if not installed
    with pytest.raises(ArgumentError, match=r"pip install 'optisweep\[postgres\]'"):
        make_engine("postgresql://postgres@127.0.0.1:5432/test")


def test_cmaes_without_its_package_is_refused_on_search_algorithm(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = SweepCreate.model_validate(
        {
            "name": "cmaes-extra",
            "workload": {"name": "rosenbrock", "epochs": 2},
            "space": {"optimizers": ["adam"], "lr": {"low": 1e-4, "high": 1e-2, "log": True}},
            "search": {"algorithm": "cmaes", "num_trials": 4},
            "objective": {"metric": "val_loss", "mode": "min"},
        }
    )
    assert check_sweep(spec, max_trials=100).num_trials == 4
    monkeypatch.setitem(sys.modules, "cmaes", None)
    with pytest.raises(SpecError, match=r"optisweep\[cmaes\]") as refused:
        check_sweep(spec, max_trials=100)
    assert refused.value.field == "search.algorithm"
