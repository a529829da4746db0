"""HTTP <-> protobuf, exactly as the Functions host converts for a Python worker.

Request side (the host's ``ToRpcHttp`` with the capabilities runtime 1.2.0
declares: RawHttpBodyBytes, RpcHttpBodyOnly, RpcHttpTriggerMetadataRemoved):
the URL as the client sent it (scheme, Host header, raw path and query);
header names lower-cased and repeated headers joined with ","; query values
joined the same way, empty ones dropped; route values; the body as bytes, set
only when there is one. The trigger metadata carries what the HTTP trigger
binding adds besides the request itself: each query value (except ``code``),
each route value, and the ``Query`` and ``Headers`` collections as JSON. (The
host also adds the top-level properties of a JSON body; the v1 Python
converters read none of this metadata, so that part is left out.)

Response side (the host's ``RawScriptResult``): status from the string
``status_code`` (200 when empty), the headers, cookies as Set-Cookie headers,
the body bytes. A function whose HTTP output was never set answers 200 with an
empty body, like the host's ``OkResult``.
"""

import json
import re
import secrets
from collections.abc import Iterable, Mapping
from datetime import UTC
from email.utils import format_datetime
from types import ModuleType
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

# The server frames the body itself; a function's own framing headers would corrupt it.
_FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding", "connection"})
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-[0-9a-f]{16}-([0-9a-f]{2})")
_STATUS = re.compile(r"\s*[+-]?[0-9]+\s*")


def _joined(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Collapse repeated names (compared without case) into one comma-joined value."""
    groups: dict[str, tuple[str, list[str]]] = {}
    for name, value in pairs:
        groups.setdefault(name.lower(), (name, []))[1].append(value)
    return {name: ",".join(values) for name, values in groups.values()}


def request_url(request: web.BaseRequest) -> str:
    """The URL the client asked for: scheme, Host header, path and query as sent."""
    return f"{request.scheme}://{request.host}{request.raw_path}"


def rpc_http(
    protos: ModuleType, request: web.BaseRequest, body: bytes, route_params: Mapping[str, str]
) -> Any:
    """The RpcHttp the host puts in the trigger's ParameterBinding."""
    headers = {name.lower(): value for name, value in _joined(request.headers.items()).items()}
    query = {name: value for name, value in _joined(request.query.items()).items() if value}
    http = protos.RpcHttp(
        method=request.method,
        url=request_url(request),
        headers=headers,
        query=query,
        params=dict(route_params),
    )
    if body:
        http.body.CopyFrom(protos.TypedData(bytes=body))
    return http


def trigger_metadata(
    protos: ModuleType, request: web.BaseRequest, route_params: Mapping[str, str]
) -> dict[str, Any]:
    """The HTTP trigger's binding data, minus the request objects the worker builds itself."""
    query = _joined(request.query.items())
    values: dict[str, tuple[str, str]] = {}  # lower-cased name -> (name, value), like the host
    for name, value in query.items():
        if name.lower() != "code":
            values[name.lower()] = (name, value)
    for name, value in route_params.items():
        values[name.lower()] = (name, value)
    metadata = {name: protos.TypedData(string=value) for name, value in values.values()}
    collections = {"Query": query, "Headers": _joined(request.headers.items())}
    for name, collection in collections.items():
        if name.lower() not in values:
            text = json.dumps(collection, separators=(",", ":"), ensure_ascii=False)
            metadata[name] = protos.TypedData(json=text)
    return metadata


def trace_context(protos: ModuleType, request: web.BaseRequest) -> Any:
    """A W3C trace context for the invocation, continuing the caller's trace if it sent one."""
    found = _TRACEPARENT.fullmatch(request.headers.get("traceparent", "").strip())
    trace_id, flags = (found[1], found[2]) if found else (secrets.token_hex(16), "00")
    return protos.RpcTraceContext(
        trace_parent=f"00-{trace_id}-{secrets.token_hex(8)}-{flags}",
        trace_state=request.headers.get("tracestate", ""),
    )


def _body(value: Any) -> tuple[bytes, str]:
    """A TypedData's bytes and the content type the host would give them on their own."""
    kind = value.WhichOneof("data")
    if kind in ("bytes", "stream"):
        return getattr(value, kind), "application/octet-stream"
    if kind == "string":
        return value.string.encode(), "text/plain; charset=utf-8"
    if kind == "json":
        return value.json.encode(), "application/json; charset=utf-8"
    if kind in ("int", "double"):
        return str(getattr(value, kind)).encode(), "text/plain; charset=utf-8"
    if kind is None:
        return b"", ""
    raise ValueError(f"cannot write a {kind} value as an HTTP body")


def _set_cookie(protos: ModuleType, response: web.Response, cookie: Any) -> None:
    options: dict[str, Any] = {"path": cookie.path.value if cookie.HasField("path") else "/"}
    if cookie.HasField("domain"):
        options["domain"] = cookie.domain.value
    if cookie.HasField("expires"):
        expires = cookie.expires.value.ToDatetime(tzinfo=UTC)
        options["expires"] = format_datetime(expires, usegmt=True)
    if cookie.HasField("max_age"):
        options["max_age"] = int(cookie.max_age.value)
    if cookie.HasField("secure"):
        options["secure"] = cookie.secure.value
    if cookie.HasField("http_only"):
        options["httponly"] = cookie.http_only.value
    same_site = protos.RpcHttpCookie.SameSite
    names = {same_site.Lax: "Lax", same_site.Strict: "Strict", same_site.ExplicitNone: "None"}
    if cookie.same_site in names:
        options["samesite"] = names[cookie.same_site]
    response.set_cookie(cookie.name, cookie.value, **options)


def web_response(protos: ModuleType, value: Any | None) -> web.Response:
    """The HTTP response for the function's HTTP output value (None: never set)."""
    if value is None or value.WhichOneof("data") is None:
        return web.Response(status=200)
    if value.WhichOneof("data") != "http":
        body, content_type = _body(value)
        return web.Response(status=200, body=body, headers={"Content-Type": content_type})
    http = value.http
    status = int(http.status_code) if _STATUS.fullmatch(http.status_code) else 200
    headers: CIMultiDict[str] = CIMultiDict()
    for name, header in http.headers.items():
        if name.lower() not in _FRAMING_HEADERS:
            headers[name] = header
    body = _body(http.body)[0] if http.HasField("body") else b""
    response = web.Response(status=status, body=body, headers=headers)
    for cookie in http.cookies:
        _set_cookie(protos, response, cookie)
    return response
