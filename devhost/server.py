"""The HTTP front of the host: routes each request to a function and runs it.

First the checks of ``devhost.request_guard`` (header bytes, Host, encoding,
size: 400, 421, 415, 413 problems). The host's own controls
(``devhost.host_routes``, ``/_devhost/...``) answer before any function. Then,
like the Functions host, it
answers 404 for unknown paths, 405 for a known route with another method, 401
with an empty body for a missing or wrong key when keys are enforced, and 500
without details when a function raised; the details go to the log. A function
that failed to load answers 500 with a short problem document naming it, so
the failure is obvious from the client too.
"""

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from devhost import auth, easy_auth, http_mapping
from devhost.app_index import FunctionSpec
from devhost.forwarded import forwarded_for
from devhost.host_routes import PREFIX as CONTROL_PREFIX
from devhost.host_routes import Control, run_control
from devhost.logs import function_scope
from devhost.request_guard import (
    BODY_TIMEOUT_SECONDS,
    MAX_BODY_BYTES,
    check_head,
    read_body,
)
from devhost.routes import MethodNotAllowed, RouteTable, path_segments
from devhost.runtime import RuntimeDriver
from localhttp.host_policy import HostPolicy
from localhttp.problem import Refusal, problem_response

logger = logging.getLogger("devhost")

_REASON = "This function was programmatically called via the host APIs."


@dataclass
class HostedFunction:
    """A function folder as the host serves it; ``load_error`` set when it did not load.

    ``route`` is the URL path template (``/api/items/{id:int}``), None without an
    HTTP trigger; ``methods`` None means every method.
    """

    name: str
    route: str | None
    methods: frozenset[str] | None
    auth_level: str
    spec: FunctionSpec | None = None
    function_id: str | None = None
    load_error: str | None = None


def outcome(status: int) -> str:
    """How the host's log names an invocation that returned ``status``."""
    if status < 400:
        return "Succeeded"
    return "Refused" if status < 500 else "Failed"


class FunctionServer:
    """Builds the aiohttp application that serves one app's functions."""

    def __init__(
        self,
        driver: RuntimeDriver,
        functions: dict[str, HostedFunction],
        routes: RouteTable,
        *,
        enforce_keys: bool,
        key: str | None,
        hosts: HostPolicy | None = None,
        max_body: int = MAX_BODY_BYTES,
        body_timeout: float = BODY_TIMEOUT_SECONDS,
        emulate_easy_auth: bool = False,
        controls: dict[str, Control] | None = None,
        control_token: str = "",
    ) -> None:
        self._emulate_easy_auth = emulate_easy_auth
        self._control_token = control_token
        self._controls = {f"{CONTROL_PREFIX}{name}": c for name, c in (controls or {}).items()}
        self._driver = driver
        self._functions = functions
        self._routes = routes
        self._enforce_keys = enforce_keys
        self._key = key
        self._hosts = hosts or HostPolicy(None)
        self._max_body = max_body
        self._body_timeout = body_timeout

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """The low-level server's handler: every request comes through here."""
        try:
            check_head(request, self._hosts)
            return await self._dispatch(request)
        except Refusal as refusal:
            response = refusal.response()
            if refusal.status in (408, 413, 415, 501):  # the body was not read: do not wait for it
                response.force_close()
            return response

    async def _dispatch(self, request: web.BaseRequest) -> web.StreamResponse:
        control = self._controls.get(request.raw_path.split("?", 1)[0])
        if control is not None:
            return await run_control(request, control, self._control_token)
        segments = path_segments(request.raw_path)
        found = self._routes.resolve(request.method, segments)
        if found is None:
            if not segments and request.method in ("GET", "HEAD"):
                return self._homepage(request)
            return web.Response(status=404)
        if isinstance(found, MethodNotAllowed):
            return web.Response(status=405, headers={"Allow": ", ".join(sorted(found.allowed))})
        function = self._functions[found.name]
        if function.function_id is None or function.spec is None:
            return problem_response(
                500,
                title="Function not loaded",
                detail=f"Function '{function.name}' failed to load; see the host log.",
            )
        if self._enforce_keys and not auth.is_authorized(
            function.auth_level, auth.presented_key(request), self._key
        ):
            return web.Response(status=401)
        request = forwarded_for(request)
        if self._emulate_easy_auth:
            fronted = easy_auth.front(request)
            if isinstance(fronted, web.Response):
                return fronted
            request = fronted
        return await self._invoke(
            function, function.spec, function.function_id, request, found.params
        )

    async def _invoke(
        self,
        function: HostedFunction,
        spec: FunctionSpec,
        function_id: str,
        request: web.BaseRequest,
        route_params: dict[str, str],
    ) -> web.StreamResponse:
        protos = self._driver.protos
        body = await read_body(request, self._max_body, self._body_timeout)
        invocation_id = str(uuid.uuid4())
        trigger = spec.http.param if spec.http else ""
        invocation = protos.InvocationRequest(
            invocation_id=invocation_id,
            function_id=function_id,
            input_data=[
                protos.ParameterBinding(
                    name=trigger,
                    data=protos.TypedData(
                        http=http_mapping.rpc_http(protos, request, body, route_params)
                    ),
                )
            ],
            trigger_metadata=http_mapping.trigger_metadata(protos, request, route_params),
            trace_context=http_mapping.trace_context(protos, request),
        )
        with function_scope(function.name, invocation_id):
            logger.debug(
                "Executing 'Functions.%s' (Reason='%s', Id=%s)",
                function.name,
                _REASON,
                invocation_id,
            )
            started = time.perf_counter()
            result = await self._driver.invoke(invocation)
            elapsed = (time.perf_counter() - started) * 1000
            if result.result.status != protos.StatusResult.Success:
                error = result.result.exception
                logger.error(
                    "Executed 'Functions.%s' (Failed, Id=%s, Duration=%.0fms)\n%s\n%s",
                    function.name,
                    invocation_id,
                    elapsed,
                    error.message,
                    error.stack_trace,
                )
                return web.Response(status=500)
            try:
                response = http_mapping.web_response(protos, self._http_output(spec, result))
            except Exception:
                logger.exception("Function '%s' returned an unusable HTTP response", function.name)
                return web.Response(status=500)
            # Per request the access line says enough; this one is for --verbose runs.
            logger.debug(
                "Executed 'Functions.%s' (%s, Status=%d, Id=%s, Duration=%.0fms)",
                function.name,
                outcome(response.status),
                response.status,
                invocation_id,
                elapsed,
            )
            return response

    @staticmethod
    def _http_output(spec: FunctionSpec, result: Any) -> Any | None:
        if spec.http_output == "$return":
            return result.return_value if result.HasField("return_value") else None
        for binding in result.output_data:
            if binding.name == spec.http_output:
                return binding.data
        return None

    def _homepage(self, request: web.BaseRequest) -> web.Response:
        base = f"{request.scheme}://{request.host}"
        lines = ["Your Functions host is running (devhost, Python v1 runtime).", "", "Functions:"]
        for function in sorted(self._functions.values(), key=lambda f: f.name):
            lines.append(f"  {describe(function, base)}")
        return web.Response(text="\n".join(lines) + "\n")


def describe(function: HostedFunction, base_url: str) -> str:
    """One line per function, in the shape ``func start`` prints: name, methods, URL."""
    if function.route is None:
        if function.load_error:
            return f"{function.name}: not loaded"
        trigger = "queueTrigger" if function.spec and function.spec.queue else "(no HTTP trigger)"
        return f"{function.name}: {trigger}"
    methods = f"[{','.join(sorted(function.methods))}] " if function.methods else ""
    line = f"{function.name}: {methods}{base_url}{function.route}"
    return f"{line}  (not loaded)" if function.load_error else line
