"""The console: a live page over the sandbox, and the HTTP API its buttons use.

``/console/`` serves one static page (plain HTML, CSS and JavaScript, no build
step). It reads ``GET /_sandbox/events`` (Server-Sent Events: the sandbox's
history a page at a time, then every change as it happens; see feed.py) and acts
through the same JSON API a test or a script uses:

==========================================  =====================================================
``GET  /_sandbox/history``                  messages, calls, webhooks, controls (JSON)
``GET  /_sandbox/events``                   the same, then live events (SSE, see feed.py)
``GET  /_sandbox/recordings/{sid}``         a recording's audio, for the page's player
``GET  /_sandbox/mounts``                   the other doubles served here (their prefixes)
``POST /_sandbox/inbound/sms``              an SMS arrives: ``{from, to?, body, media_url?, url?}``
``POST /_sandbox/inbound/call``             a call comes in: ``{from, to?, url?, application_sid?,
                                            answer?, hold_seconds?, message?, transcript?}``
``POST /_sandbox/client_calls``             the Voice SDK places a call: ``{token, to, params?}``
``POST /_sandbox/messages/{sid}/status``    ``{status, error_code?}``
``POST /_sandbox/calls/{sid}/status``       ``{status}``
``POST /_sandbox/webhooks/{id}/resend``     send a logged request again
``POST /_sandbox/app/{function}``           post JSON to the app's send_sms or make_call
``POST /_sandbox/actions/reset_limits``     ask the local host to clear the app's rate limits
``POST /_sandbox/messaging_services``       ``{sid, numbers, advanced_opt_out?, keywords?}``
``DELETE /_sandbox/messaging_services/{sid}``  forget that Messaging Service
==========================================  =====================================================

Refusals are RFC 9457 problem documents; a call the app keeps waiting past
``call_flow.RUN_SECONDS`` answers 504 (the call goes on). Every action is sent as JSON (a
body-less one with ``Content-Type: application/json`` all the same) from the
sandbox's own origin: see cross_site.py.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import feed, simulate, voice_sdk
from . import media as inbound_media
from .bodies import read_request
from .errors import ActionError
from .events import Tracked
from .messaging_services import MessagingService
from .webhook_log import MAX_RESENT

if TYPE_CHECKING:
    from .state import SandboxState

PAGE_DIR = Path(__file__).with_name("console_page")
#: The page's files and their media types; nothing else under /console/ is served.
ASSETS = {
    "index.html": "text/html",
    "console.css": "text/css",
    "console.js": "text/javascript",
    "devices.css": "text/css",  # the Devices view: push_sandbox's devices and their pushes
    "devices.js": "text/javascript",
}
#: The body an action may send but for inbound/sms's (aiohttp's default cap).
MAX_ACTION_BYTES = 1024 * 1024
#: The page runs its own files only (no inline script, so an injected one cannot run)
#: and no other site may frame it (clickjacking its buttons); ``data:`` is its blank icon.
PAGE_POLICY = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"
PROBLEM_TYPE = "urn:twilio-sandbox:problem:{slug}"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Key = web.AppKey["SandboxState"]


def add_routes(app: web.Application, key: Key) -> None:
    """Serve the page and the console API on ``app`` (whose sandbox is ``app[key]``)."""
    routes = Routes(key)
    app.router.add_get("/console", routes.to_page)
    app.router.add_get("/console/", routes.page)
    app.router.add_get("/console/{name}", routes.asset)
    app.router.add_get("/_sandbox/history", routes.history)
    app.router.add_get("/_sandbox/events", routes.events)
    # An SMS may bring 5 MB of media in base64 JSON (media.py): the one larger body.
    app.router.add_post("/_sandbox/inbound/sms",
                        routes.action(routes.inbound_sms, limit=inbound_media.MAX_JSON_BYTES))
    app.router.add_post("/_sandbox/inbound/call", routes.action(routes.inbound_call))
    app.router.add_post("/_sandbox/messages/{sid}/status", routes.action(routes.push_status))
    app.router.add_post("/_sandbox/calls/{sid}/status", routes.action(routes.push_status))
    app.router.add_post("/_sandbox/webhooks/{id}/resend", routes.action(routes.resend))
    app.router.add_post("/_sandbox/app/{function}", routes.action(routes.app_request))
    app.router.add_post("/_sandbox/client_calls", routes.action(routes.client_call))
    app.router.add_post("/_sandbox/actions/reset_limits", routes.action(routes.reset_limits))
    app.router.add_post("/_sandbox/messaging_services", routes.action(routes.messaging_service))
    app.router.add_delete("/_sandbox/messaging_services/{sid}",
                          routes.action(routes.drop_messaging_service))


def problem(status: int, title: str, detail: str, code: int | None = None) -> web.Response:
    slug = title.lower().replace(" ", "-")
    body: dict[str, Any] = {"type": PROBLEM_TYPE.format(slug=slug), "title": title,
                            "status": status, "detail": detail}
    if code is not None:
        body["code"] = code
    return web.json_response(body, status=status, content_type="application/problem+json")


class Routes:
    """The console's handlers, reading the sandbox from the request's application."""

    def __init__(self, key: Key) -> None:
        self._key = key

    def sandbox(self, request: web.Request) -> SandboxState:
        return request.app[self._key]

    # --- the page ----------------------------------------------------------------

    async def to_page(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/console/")

    async def page(self, request: web.Request) -> web.StreamResponse:
        return self._file("index.html")

    async def asset(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in ASSETS:
            raise web.HTTPNotFound()
        return self._file(name)

    @staticmethod
    def _file(name: str) -> web.Response:
        return web.Response(body=(PAGE_DIR / name).read_bytes(), content_type=ASSETS[name],
                            charset="utf-8", headers={"Cache-Control": "no-cache",
                                                      "Content-Security-Policy": PAGE_POLICY})

    # --- reading -----------------------------------------------------------------

    async def history(self, request: web.Request) -> web.StreamResponse:
        return await feed.write_json(request, feed.history_document(self.sandbox(request)),
                                     item=_views)

    async def events(self, request: web.Request) -> web.StreamResponse:
        return await feed.events(request, self.sandbox(request))

    # --- acting ------------------------------------------------------------------

    def action(self, act: Callable[[SandboxState, web.Request, Any], Awaitable[Any]],
               limit: int = MAX_ACTION_BYTES) -> Handler:
        """A JSON-in, JSON-out handler reading at most ``limit`` bytes; refusals become
        problem documents."""

        async def handle(request: web.Request) -> web.StreamResponse:
            raw = await read_request(request, limit)  # JSON, or nothing: see cross_site.py
            try:
                data = json.loads(raw) if raw else {}
            except ValueError:
                return problem(400, "Invalid body", "the body is not JSON")
            if not isinstance(data, dict):
                return problem(400, "Invalid body", "the body must be a JSON object")
            try:
                result = await act(self.sandbox(request), request, data)
            except ActionError as exc:
                return problem(exc.status, exc.title, exc.detail, exc.code)
            return web.json_response(_views(result))

        return handle

    @staticmethod
    async def inbound_sms(sandbox: SandboxState, _request: web.Request, data: Any) -> Any:
        return await simulate.inbound_sms(sandbox, data)

    @staticmethod
    async def inbound_call(sandbox: SandboxState, _request: web.Request, data: Any) -> Any:
        if "application_sid" in data:  # the number's voice configuration is a TwiML App
            return await voice_sdk.inbound_call(sandbox, data)
        return await simulate.inbound_call(sandbox, data)

    @staticmethod
    async def client_call(sandbox: SandboxState, _request: web.Request, data: Any) -> Any:
        return await voice_sdk.client_call(sandbox, data)

    @staticmethod
    async def push_status(sandbox: SandboxState, request: web.Request, data: Any) -> Any:
        pushed = simulate.push_status(sandbox, request.match_info["sid"], data)
        sandbox.report_pushed(pushed)  # the app hears of it as from Twilio
        return pushed

    @staticmethod
    async def resend(sandbox: SandboxState, request: web.Request, _data: Any) -> Any:
        try:
            record = sandbox.webhooks.find(int(request.match_info["id"]))
        except ValueError:
            record = None
        if record is None:
            raise ActionError(404, "Not found", "no such request in the sandbox's history")
        if record.sent is None:
            raise ActionError(409, "Not resendable", "that request never went out, or its body "
                              f"was over the {MAX_RESENT // 1024} KiB the sandbox keeps")
        return await sandbox.webhooks.resend(sandbox.session, record)

    @staticmethod
    async def app_request(sandbox: SandboxState, request: web.Request, data: Any) -> Any:
        return await simulate.app_request(sandbox, request.match_info["function"], data)

    @staticmethod
    async def messaging_service(sandbox: SandboxState, _request: web.Request, data: Any) -> Any:
        """Put numbers in a Messaging Service (see messaging_services.py), as its sender pool."""
        try:
            service = MessagingService.from_json(data)
            sandbox.add_messaging_service(service)
        except ValueError as exc:
            raise ActionError(400, "Invalid field", str(exc)) from None
        return service.to_json()

    @staticmethod
    async def drop_messaging_service(sandbox: SandboxState, request: web.Request,
                                     _data: Any) -> Any:
        sid = request.match_info["sid"]
        if sandbox.messaging_services.pop(sid, None) is None:
            raise ActionError(404, "Not found", f"no Messaging Service {sid} in the sandbox")
        return {"sid": sid, "deleted": True}

    @staticmethod
    async def reset_limits(sandbox: SandboxState, _request: web.Request, _data: Any) -> Any:
        return await simulate.reset_limits(sandbox)


def _views(value: Any) -> Any:
    """Action results with each stored record as the console sees it (with its steps)."""
    if isinstance(value, Tracked):
        return value.view()
    if isinstance(value, dict):
        return {key: _views(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_views(item) for item in value]
    return value
