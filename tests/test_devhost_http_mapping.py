"""HTTP <-> protobuf conversion of the local Functions host."""

import json
import sys
from datetime import UTC, datetime

from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from devhost.http_mapping import rpc_http, trigger_metadata, web_response
from devhost.protos import load_protos

protos = load_protos()


def mocked(path: str, headers: list[tuple[str, str]]) -> web.Request:
    return make_mocked_request("POST", path, headers=CIMultiDict(headers))


def test_the_generated_modules_load_without_the_stray_tests_package() -> None:
    assert protos.NullableString is not None
    assert protos.StreamingMessage is not None
    assert "tests.protos" not in sys.modules


def test_request_becomes_rpc_http_like_the_host_builds_it() -> None:
    request = mocked(
        "/api/echo/a%20b?x=1&x=2&X=3&empty=&code=k",
        [("Host", "example.test:8443"), ("X-Multi", "a"), ("x-multi", "b"), ("Accept", "*/*")],
    )
    http = rpc_http(protos, request, b"\x00\xffbody", {"rest": "a b"})
    assert http.method == "POST"
    assert http.url == "http://example.test:8443/api/echo/a%20b?x=1&x=2&X=3&empty=&code=k"
    assert dict(http.headers) == {"host": "example.test:8443", "x-multi": "a,b", "accept": "*/*"}
    assert dict(http.query) == {"x": "1,2,3", "code": "k"}
    assert dict(http.params) == {"rest": "a b"}
    assert http.body.bytes == b"\x00\xffbody"


def test_an_empty_body_is_left_unset() -> None:
    http = rpc_http(protos, mocked("/api/hello", [("Host", "h")]), b"", {})
    assert not http.HasField("body")


def test_trigger_metadata_is_the_http_binding_data_without_the_request() -> None:
    request = mocked("/api/items/7?name=Ada&code=secret", [("Host", "h"), ("X-Id", "1")])
    metadata = trigger_metadata(protos, request, {"id": "7"})
    assert set(metadata) == {"name", "id", "Query", "Headers"}
    assert metadata["name"].string == "Ada"
    assert metadata["id"].string == "7"
    assert json.loads(metadata["Query"].json) == {"name": "Ada", "code": "secret"}
    assert json.loads(metadata["Headers"].json) == {"Host": "h", "X-Id": "1"}


def test_rpc_http_response_becomes_status_headers_cookies_and_body() -> None:
    cookie = protos.RpcHttpCookie(
        name="session",
        value="abc",
        http_only=protos.NullableBool(value=True),
        same_site=protos.RpcHttpCookie.SameSite.Strict,
    )
    cookie.expires.value.FromDatetime(datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC))
    value = protos.TypedData(
        http=protos.RpcHttp(
            status_code="201",
            headers={"content-type": "application/json", "X-A": "1", "Content-Length": "999"},
            body=protos.TypedData(bytes=b'{"ok": true}'),
            cookies=[cookie, protos.RpcHttpCookie(name="theme", value="dark")],
        )
    )
    response = web_response(protos, value)
    assert response.status == 201
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["X-A"] == "1"
    assert response.body == b'{"ok": true}'
    assert "Content-Length" not in response.headers
    session = response.cookies["session"]
    assert (session.value, session["path"], session["samesite"]) == ("abc", "/", "Strict")
    assert session["httponly"] is True
    assert session["expires"] == "Wed, 02 Jan 2030 03:04:05 GMT"
    assert response.cookies["theme"].value == "dark"


def test_an_empty_status_code_means_200() -> None:
    response = web_response(protos, protos.TypedData(http=protos.RpcHttp()))
    assert (response.status, response.body) == (200, b"")


def test_no_http_output_answers_200_empty_and_a_plain_string_is_text() -> None:
    assert (web_response(protos, None).status, web_response(protos, None).body) == (200, None)
    text = web_response(protos, protos.TypedData(string="hi"))
    assert (text.status, text.body, text.content_type) == (200, b"hi", "text/plain")
