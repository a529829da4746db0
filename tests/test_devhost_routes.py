"""Route templates and route resolution of the local Functions host."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devhost.routes import (
    MethodNotAllowed,
    RouteMatch,
    RouteTable,
    RouteTemplate,
    RouteTemplateError,
    join_template,
    path_segments,
)


def match(template: str, path: str) -> dict[str, str] | None:
    return RouteTemplate(template).match(path_segments(path))


def test_literal_segments_match_without_case_and_ignore_a_trailing_slash() -> None:
    assert match("api/make_call", "/API/Make_Call/") == {}
    assert match("api/make_call", "/api/make_call/extra") is None
    assert match("api/make_call", "/api") is None


def test_int_constraint_accepts_32_bit_integers_only() -> None:
    assert match("api/items/{id:int}", "/api/items/42") == {"id": "42"}
    assert match("api/items/{id:int}", "/api/items/-7") == {"id": "-7"}
    assert match("api/items/{id:int}", "/api/items/2147483647") == {"id": "2147483647"}
    assert match("api/items/{id:int}", "/api/items/2147483648") is None
    assert match("api/items/{id:int}", "/api/items/abc") is None


@given(st.integers(min_value=-(2**31), max_value=2**31 - 1))
def test_int_constraint_round_trips_every_int(number: int) -> None:
    assert match("items/{id:int}", f"/items/{number}") == {"id": str(number)}


@given(st.integers().filter(lambda n: not -(2**31) <= n < 2**31))
def test_int_constraint_rejects_every_out_of_range_number(number: int) -> None:
    assert match("items/{id:int}", f"/items/{number}") is None


@given(st.lists(st.from_regex(r"[A-Za-z0-9_.-]{1,12}", fullmatch=True), min_size=1, max_size=5))
def test_a_literal_template_matches_its_own_path_in_any_case(segments: list[str]) -> None:
    template = "/".join(segments)
    assert match(template, "/" + template.upper()) == {}


def test_optional_and_catch_all_parameters() -> None:
    assert match("api/files/{name?}", "/api/files") == {}
    assert match("api/files/{name?}", "/api/files/a.txt") == {"name": "a.txt"}
    assert match("api/static/{*path}", "/api/static") == {}
    assert match("api/static/{*path}", "/api/static/css/site.css") == {"path": "css/site.css"}


def test_parameters_inside_a_segment_and_parametrised_constraints() -> None:
    assert match("api/{name}.{ext:alpha}", "/api/report.pdf") == {"name": "report", "ext": "pdf"}
    assert match("api/{name}.{ext:alpha}", "/api/report.7z") is None
    assert match("api/codes/{code:length(3)}", "/api/codes/abc") == {"code": "abc"}
    assert match("api/codes/{code:length(3)}", "/api/codes/abcd") is None
    assert match("api/pages/{n:range(1,10)}", "/api/pages/10") == {"n": "10"}
    assert match("api/pages/{n:range(1,10)}", "/api/pages/11") is None


def test_segments_are_decoded_after_splitting() -> None:
    assert path_segments("/api/a%2Fb/c%20d?x=1") == ["api", "a/b", "c d"]
    assert match("api/{name}", "/api/a%2Fb") == {"name": "a/b"}


@pytest.mark.parametrize(
    "template",
    [
        "api/{id=1}",
        "api/{id:regex(^a$)}",
        "api/{id:unknown}",
        "api/{*rest}/more",
        "api/{a?}/b",
        "api/{a}{b}",
        "api/{a}/{A}",
        "api//b",
        "api/{unclosed",
    ],
)
def test_templates_outside_the_supported_subset_are_rejected(template: str) -> None:
    with pytest.raises(RouteTemplateError):
        RouteTemplate(template)


def test_route_prefix_is_joined_like_the_host_does() -> None:
    assert join_template("api", "items/{id}") == "api/items/{id}"
    assert join_template("/api/", "/items") == "api/items"
    assert join_template("", "items") == "items"


@pytest.mark.parametrize("order", [("new", "byid"), ("byid", "new")])
def test_the_most_specific_route_wins_whatever_the_order(order: tuple[str, str]) -> None:
    templates = {"new": RouteTemplate("api/items/new"), "byid": RouteTemplate("api/items/{id}")}
    table = RouteTable((name, templates[name], None) for name in order)
    assert table.resolve("GET", ["api", "items", "new"]) == RouteMatch("new", {})
    assert table.resolve("GET", ["api", "items", "7"]) == RouteMatch("byid", {"id": "7"})


def test_methods_select_among_routes_and_report_what_is_allowed() -> None:
    table = RouteTable(
        [
            ("read", RouteTemplate("api/thing"), frozenset({"GET"})),
            ("write", RouteTemplate("api/thing"), frozenset({"POST", "PUT"})),
            ("any", RouteTemplate("api/any"), None),
        ]
    )
    assert table.resolve("post", ["api", "thing"]) == RouteMatch("write", {})
    assert table.resolve("DELETE", ["api", "thing"]) == MethodNotAllowed(
        frozenset({"GET", "POST", "PUT"})
    )
    assert table.resolve("PATCH", ["api", "any"]) == RouteMatch("any", {})
    assert table.resolve("GET", ["api", "missing"]) is None


@pytest.mark.parametrize(
    ("template", "path"),
    [
        ("api/send_sms", "/api/\u017fend_sms"),  # LATIN SMALL LETTER LONG S folds to s
        ("api/make_call", "/api/ma\u212ae_call"),  # KELVIN SIGN folds to k
        ("api/file-{name}.css", "/api/FILE-a.C\u017fS"),  # complex segments too
        ("api/items/{id:int}", "/api/items/\u0664\u0662"),  # Arabic-Indic digits
        ("api/items/{id:double}", "/api/items/\u0664.5"),
    ],
)
def test_matching_is_ascii_only_as_on_azure(template: str, path: str) -> None:
    assert match(template, path) is None


def test_ascii_case_still_matches_everywhere() -> None:
    assert match("api/send_sms", "/API/SEND_SMS") == {}
    assert match("api/file-{name}.txt", "/api/FILE-a.TXT") == {"name": "a"}
    assert match("api/items/{flag:bool}", "/api/items/TRUE") == {"flag": "TRUE"}
