"""Indexing of function.json folders by the local Functions host."""

import json
from pathlib import Path
from typing import Any

import pytest

from devhost.app_index import AppIndexError, index_app, read_route_prefix

FIXTURE_APP = Path(__file__).parent / "fixtures" / "hostapp"

HTTP_OUT = {"type": "http", "direction": "out", "name": "$return"}


def add_function(root: Path, name: str, document: Any, script: str | None = "__init__.py") -> None:
    folder = root / name
    folder.mkdir()
    (folder / "function.json").write_text(
        document if isinstance(document, str) else json.dumps(document), encoding="utf-8"
    )
    if script:
        (folder / script).write_text("def main(req):\n    return None\n", encoding="utf-8")


def trigger(**extra: Any) -> dict[str, Any]:
    return {"type": "httpTrigger", "direction": "in", "name": "req", **extra}


@pytest.mark.parametrize(
    ("host_json", "prefix"),
    [
        (None, "api"),
        ({"version": "2.0"}, "api"),
        ({"extensions": {"http": {"routePrefix": ""}}}, ""),
        ({"extensions": {"http": {"routePrefix": "/v1/"}}}, "v1"),
    ],
)
def test_route_prefix_comes_from_host_json(
    tmp_path: Path, host_json: dict[str, Any] | None, prefix: str
) -> None:
    if host_json is not None:
        (tmp_path / "host.json").write_text(json.dumps(host_json), encoding="utf-8")
    assert read_route_prefix(tmp_path) == prefix


def test_an_unreadable_host_json_stops_the_host(tmp_path: Path) -> None:
    (tmp_path / "host.json").write_text("{", encoding="utf-8")
    with pytest.raises(AppIndexError):
        index_app(tmp_path)


def test_a_function_json_becomes_the_load_request_and_route_data(tmp_path: Path) -> None:
    add_function(tmp_path, "make_call", {"bindings": [trigger(methods=["post"]), HTTP_OUT]})
    (spec,) = index_app(tmp_path).functions
    assert spec.name == "make_call"
    assert spec.script_file == (tmp_path / "make_call" / "__init__.py").resolve()
    assert spec.entry_point == "main"
    assert [(b.name, b.type, b.direction) for b in spec.bindings] == [
        ("req", "httpTrigger", "in"),
        ("$return", "http", "out"),
    ]
    assert spec.http is not None
    assert (spec.http.route, spec.http.methods) == ("make_call", frozenset({"POST"}))
    assert spec.http.auth_level == "function"
    assert spec.http_output == "$return"


def test_script_file_entry_point_route_and_auth_level_are_honoured(tmp_path: Path) -> None:
    document = {
        "scriptFile": "handler.py",
        "entryPoint": "run",
        "bindings": [trigger(route="calls/{id}", authLevel="Anonymous"), HTTP_OUT],
    }
    add_function(tmp_path, "calls", document, script="handler.py")
    (spec,) = index_app(tmp_path).functions
    assert spec.script_file.name == "handler.py"
    assert spec.entry_point == "run"
    assert spec.http is not None
    assert (spec.http.route, spec.http.methods, spec.http.auth_level) == (
        "calls/{id}",
        None,
        "anonymous",
    )


def test_disabled_functions_are_left_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    add_function(tmp_path, "flagged", {"disabled": True, "bindings": [trigger(), HTTP_OUT]})
    add_function(tmp_path, "by_setting", {"bindings": [trigger(), HTTP_OUT]})
    add_function(tmp_path, "served", {"bindings": [trigger(), HTTP_OUT]})
    monkeypatch.setenv("AzureWebJobs.by_setting.Disabled", "true")
    index = index_app(tmp_path)
    assert [f.name for f in index.functions] == ["served"]
    assert sorted(index.disabled) == ["by_setting", "flagged"]


@pytest.mark.parametrize(
    ("document", "script", "reason"),
    [
        ("{broken", "__init__.py", "cannot be read"),
        ({"bindings": []}, "__init__.py", "no bindings"),
        ({"bindings": [trigger(direction="sideways")]}, "__init__.py", "direction"),
        ({"bindings": [trigger(authLevel="system")]}, "__init__.py", "authLevel"),
        ({"bindings": [trigger(), {**HTTP_OUT, "name": "req"}]}, "__init__.py", "share a name"),
        ({"bindings": [trigger(), HTTP_OUT]}, None, "not found"),
    ],
)
def test_an_unusable_function_json_is_reported_and_the_others_still_index(
    tmp_path: Path, document: Any, script: str | None, reason: str
) -> None:
    add_function(tmp_path, "bad", document, script=script)
    add_function(tmp_path, "good", {"bindings": [trigger(), HTTP_OUT]})
    index = index_app(tmp_path)
    assert [f.name for f in index.functions] == ["good"]
    assert reason in index.errors["bad"]


def test_the_fixture_app_indexes_every_folder_with_a_function_json() -> None:
    index = index_app(FIXTURE_APP)
    assert index.route_prefix == "api"
    assert index.disabled == ["disabled_fn"]
    assert index.errors == {}
    names = {f.name for f in index.functions}
    assert names == {"created", "echo", "fails", "hello", "items", "mismatch", "out_param", "probe"}
