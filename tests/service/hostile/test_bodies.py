"""Hostile request bodies are a 4xx naming the field, never a 5xx: non-finite numbers, NUL and
lone surrogates, bodies over the size limit, long values, uncapped lists, YAML aliases."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from optisweep.service.config import Settings
from tests.service.hostile.conftest import LIMIT, SPEC, Served, first_error, post_json


def _numeric_paths(value: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    if isinstance(value, dict | list):
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            yield from _numeric_paths(item, (*path, key))
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield path


def _with(spec: dict[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    """A deep copy of ``spec`` with ``value`` at ``path``."""
    changed: Any = json.loads(json.dumps(spec))
    target = changed
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    result: dict[str, Any] = changed
    return result


NUMBER_PATHS = [*_numeric_paths(SPEC), ("name",), ("workload", "unknown_field")]


def test_the_spec_with_every_number_is_valid(served: Served) -> None:
    assert served.client.post("/sweeps", json=SPEC).status_code == 201


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
@pytest.mark.parametrize("path", NUMBER_PATHS, ids=[".".join(map(str, p)) for p in NUMBER_PATHS])
def test_a_non_finite_number_anywhere_is_422_naming_it(
    served: Served, path: tuple[str | int, ...], literal: str
) -> None:
    text = json.dumps(_with(SPEC, path, "@here@")).replace('"@here@"', literal)
    error = first_error(post_json(served, text))
    assert error["loc"] == ["body", *path]
    assert error["type"] == "finite_number"


BAD_STRINGS = {"nul": "a\x00b", "surrogate": "x\ud800"}
STRING_PATHS: list[tuple[str | int, ...]] = [
    ("name",),
    ("workload", "name"),
    ("workload", "unknown_field"),
    ("space", "optimizers", 0),
    ("space", "beta1", "values", 1),
    ("objective", "metric"),
]


@pytest.mark.parametrize("bad", BAD_STRINGS.values(), ids=BAD_STRINGS.keys())
@pytest.mark.parametrize("path", STRING_PATHS, ids=[".".join(map(str, p)) for p in STRING_PATHS])
def test_nul_or_a_lone_surrogate_in_a_body_string_is_422_naming_it(
    served: Served, path: tuple[str | int, ...], bad: str
) -> None:
    error = first_error(post_json(served, json.dumps(_with(SPEC, path, bad))))
    assert (error["loc"], error["type"]) == (["body", *path], "string_unicode")


@pytest.mark.parametrize("bad", BAD_STRINGS.values(), ids=BAD_STRINGS.keys())
def test_nul_or_a_lone_surrogate_in_a_key_is_422_naming_its_parent(
    served: Served, bad: str
) -> None:
    spec = _with(SPEC, ("space", "overrides"), {bad: {}})
    error = first_error(post_json(served, json.dumps(spec)))
    assert error["loc"][:3] == ["body", "space", "overrides"]
    assert len(error["loc"]) == 4  # the key, escaped


@pytest.mark.parametrize(
    ("text", "loc"),
    [
        ('name: "x\\ud800"\n', ["body", "name"]),
        ('name: "a\\0b"\n', ["body", "name"]),
        ("name: a\x00b\n", ["body"]),
        ("space: {lr: {low: .nan}}\n", ["body", "space", "lr", "low"]),
    ],
    ids=["yaml-surrogate", "yaml-nul", "raw-nul", "yaml-nan"],
)
def test_a_spec_text_with_unstorable_values_is_422(
    served: Served, text: str, loc: list[str]
) -> None:
    response = served.client.post(
        "/specs/parse", content=text.encode("utf-8"), headers={"content-type": "text/plain"}
    )
    assert first_error(response)["loc"] == loc
    json_body = post_json(served, json.dumps("a\x00"), path="/specs/parse")
    assert first_error(json_body)["loc"] == ["body"]


def _raw_response(sock: socket.socket) -> tuple[int, dict[str, Any]]:
    """The status and JSON body of the HTTP response on ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(
        next(
            line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
        ).split(b":")[1]
    )
    while len(body) < length:
        body += sock.recv(65536)
    return int(head.split()[1]), json.loads(body)


def _post_sweep(served: Served) -> bytes:
    """The head of a POST /sweeps written by hand, signed in, without its end."""
    return (
        b"POST /api/v1/sweeps HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer %s\r\n" % served.token.encode()
    )


def test_the_default_limit_is_1_mib_and_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().max_request_bytes == LIMIT
    monkeypatch.setenv("OPTISWEEP_MAX_REQUEST_BYTES", "2048")
    assert Settings().max_request_bytes == 2048


@pytest.mark.parametrize("path", ["/sweeps", "/specs/parse"])
def test_a_body_over_the_limit_is_413_with_or_without_a_content_length(
    served: Served, path: str
) -> None:
    at_limit = json.dumps({"name": "n" * (LIMIT - 12)}).encode()
    assert len(at_limit) == LIMIT
    assert post_json(served, at_limit, path).status_code == 422  # read and validated
    over = post_json(served, at_limit + b" ", path)
    assert (over.status_code, over.headers["content-type"]) == (413, "application/json")
    assert str(LIMIT) in over.json()["detail"]
    chunks = (b" " * 65_536 for _ in range(LIMIT // 65_536 + 1))
    chunked = served.client.post(path, content=chunks, headers={"content-type": "text/plain"})
    assert "content-length" not in chunked.request.headers
    assert chunked.status_code == 413
    assert str(LIMIT) in chunked.json()["detail"]


def test_the_limit_is_checked_before_the_body_is_read(served: Served) -> None:
    # A Content-Length over the limit is refused before a byte of the body arrives.
    with socket.create_connection(served.address, timeout=10) as sock:
        sock.sendall(_post_sweep(served) + b"Content-Length: %d\r\n\r\n" % (LIMIT + 1))
        status, body = _raw_response(sock)
    assert status == 413
    assert str(LIMIT) in body["detail"]
    # A chunked body is refused once it passes the limit, before it ends.
    with socket.create_connection(served.address, timeout=10) as sock:
        sock.sendall(_post_sweep(served) + b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"x" * 65_536
        for _ in range(LIMIT // len(chunk) + 1):
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        status, body = _raw_response(sock)
    assert status == 413
    assert str(LIMIT) in body["detail"]


LONG = 500_000
LONG_VALUES: list[tuple[str, dict[str, Any], tuple[str, ...]]] = [
    ("name", {"name": "n" * LONG}, ("name",)),
    (
        "optimizer",
        {"space": {"optimizers": ["z" * LONG], "lr": {"low": 0.1, "high": 1}}},
        ("space", "optimizers", 0),
    ),
    (
        "values",
        {"space": {"optimizers": ["sgd"], "lr": {"values": [0.5] * 150_000}}},
        ("space", "lr"),
    ),
    (
        "workload value",
        {"workload": {"name": "rosenbrock", "epochs": 2, "steps_per_epoch": "s" * LONG}},
        ("workload", "steps_per_epoch"),
    ),
    (
        "workload field",
        {"workload": {"name": "rosenbrock", "epochs": 2, "f" * LONG: 1}},
        ("workload",),
    ),
    (
        "override",
        {
            "space": {
                "optimizers": ["adam"],
                "lr": {"low": 0.1, "high": 1},
                "overrides": {"adam": {"eps": "e" * LONG}},
            }
        },
        ("space", "overrides"),
    ),
    (
        "many bad values",
        {"space": {"optimizers": ["sgd"], "lr": {"values": [{"v": "v" * 100}] * 5000}}},
        ("space", "lr"),
    ),
    (
        "hyperparameter",
        {
            "space": {
                "optimizers": ["adam"],
                "lr": {"low": 0.1, "high": 1},
                "overrides": {"adam": {"h" * LONG: 1}},
            }
        },
        ("space", "overrides"),
    ),
]


@pytest.mark.parametrize(
    ("change", "loc"), [case[1:] for case in LONG_VALUES], ids=[case[0] for case in LONG_VALUES]
)
def test_the_422_for_a_long_value_repeats_only_a_prefix_of_it(
    served: Served, change: dict[str, Any], loc: tuple[str, ...]
) -> None:
    response = post_json(served, json.dumps({**SPEC, **change}))
    assert response.status_code == 422, response.text[:1000]
    assert len(response.content) < 8192, response.text[:1000]
    locs = [d["loc"] for d in response.json()["detail"]]
    assert any(found[1 : 1 + len(loc)] == list(loc) for found in locs), locs


CAPS: list[tuple[str, dict[str, Any], tuple[str | int, ...], str]] = [
    ("name", {"name": "n" * 201}, ("name",), "string_too_long"),
    (
        "optimizers",
        {"space": {"optimizers": [f"o{i}" for i in range(100)], "lr": {"low": 0.1, "high": 1}}},
        ("space", "optimizers"),
        "too_long",
    ),
    (
        "optimizer name",
        {"space": {"optimizers": ["o" * 101], "lr": {"low": 0.1, "high": 1}}},
        ("space", "optimizers", 0),
        "string_too_long",
    ),
    (
        "choice values",
        {"space": {"optimizers": ["sgd"], "lr": {"values": [0.1] * 10_001}}},
        ("space", "lr", "values"),  # the path as written: no union tag
        "too_long",
    ),
    (
        "choice string",
        {"space": {"optimizers": ["sgd"], "lr": {"values": ["v" * 101]}}},
        ("space", "lr", "values", 0),
        "value_error",
    ),
    (
        "choice list",
        {"space": {"optimizers": ["sgd"], "lr": {"values": [[0.1] * 17]}}},
        ("space", "lr", "values", 0),
        "value_error",
    ),
    (
        "overrides",
        {
            "space": {
                "optimizers": ["sgd"],
                "lr": {"low": 0.1, "high": 1},
                "overrides": {"sgd": {f"h{i}": 1 for i in range(65)}},
            }
        },
        ("space", "overrides", "sgd"),
        "too_long",
    ),
    (
        "override family",
        {
            "space": {
                "optimizers": ["sgd"],
                "lr": {"low": 0.1, "high": 1},
                "overrides": {"f" * 101: {}},
            }
        },
        ("space", "overrides", "f" * 100 + "...", "[key]"),
        "string_too_long",
    ),
    (
        "workload name",
        {"workload": {"name": "w" * 101, "epochs": 2}},
        ("workload", "name"),
        "string_too_long",
    ),
    (
        "workload fields",
        {"workload": {"name": "rosenbrock", "epochs": 2, **{f"f{i}": 1 for i in range(65)}}},
        ("workload",),
        "value_error",
    ),
    ("metric", {"objective": {"metric": "m" * 101}}, ("objective", "metric"), "string_too_long"),
]


@pytest.mark.parametrize(
    ("change", "loc", "error_type"), [case[1:] for case in CAPS], ids=[case[0] for case in CAPS]
)
def test_lists_dicts_and_strings_of_a_spec_are_capped(
    served: Served, change: dict[str, Any], loc: tuple[str | int, ...], error_type: str
) -> None:
    response = post_json(served, json.dumps({**SPEC, **change}))
    assert response.status_code == 422, response.text[:1000]
    found = [(d["loc"][1:], d["type"]) for d in response.json()["detail"]]
    assert (list(loc), error_type) in found, found


def _laughs(levels: int) -> str:
    """The "billion laughs" YAML: each level's list holds the previous one nine times."""
    lines = ['l0: &l0 ["lol"]']
    for level in range(1, levels + 1):
        lines.append(f"l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * 9)}]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("text", ["a: &x [1, 2]\nb: *x\n", _laughs(5)], ids=["alias", "laughs"])
def test_yaml_aliases_are_refused(served: Served, text: str) -> None:
    response = served.client.post(
        "/specs/parse", content=text, headers={"content-type": "text/plain"}
    )
    error = first_error(response)
    assert error["loc"] == ["body"]
    assert "YAML aliases (*name) are not supported" in error["msg"]
    anchor_only = served.client.post(
        "/specs/parse", content="a: &x 1\n", headers={"content-type": "text/plain"}
    )
    assert anchor_only.json() == {"a": 1}


@pytest.mark.parametrize(
    "body",
    [b"\xff\xfe\xfd", b"[" * 10_000, b"{", b"1" * 5000],
    ids=["not-utf8", "deep", "cut", "digits"],
)
def test_a_body_that_is_not_json_is_422_not_400(served: Served, body: bytes) -> None:
    error = first_error(post_json(served, body))
    assert (error["loc"][0], error["type"]) == ("body", "json_invalid")
