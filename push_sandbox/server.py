"""The double's HTTP routes: Notification Hubs' data plane, and its controls.

Mounted under ``/notificationhubs/`` (the app's ``Endpoint``), it answers, per
https://learn.microsoft.com/en-us/rest/api/notificationhubs/installation-operations:

==============================================  ===========================================
``PUT    /{hub}/installations/{id}``            create or overwrite: 200
``GET    /{hub}/installations/{id}``            200 with the installation, 404 if none
``PATCH  /{hub}/installations/{id}``            JSON-Patch: 204, as the REST page says
                                                (update-installation), 404 if none
``DELETE /{hub}/installations/{id}``            204, whether or not it existed
``POST   /{hub}/messages/``                     send: 201 (``Location`` on Standard)
==============================================  ===========================================

each with ``?api-version=`` and a SAS token (sas.py); refusals as ``<Error>``
XML (errors.py). The controls, for tests and the console's Devices view, take
JSON only, from the page's own origin (see :func:`guarded`):

``GET /_control/state``, ``GET /_control/pushes?installation_id=&at_least=&wait=``,
``GET /_control/events`` (SSE, feed.py), ``POST|DELETE /_control/faults``,
``POST /_control/reset``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, cast

from aiohttp import web

from localhttp import same_origin
from localhttp.bodies import read_body
from localhttp.problem import Refusal, problem_response

from . import feed, installations, payloads
from .double import NotificationHubsDouble
from .errors import HubError
from .faults import Fault
from .sas import Right, authorize
from .tags import parse

log = logging.getLogger(__name__)

DOUBLE = web.AppKey("push_double", NotificationHubsDouble)
#: Where the launcher mounts the double in the Twilio sandbox's server.
PREFIX = "/notificationhubs/"
#: Notification Hubs refuses a notification over 64 KB with 413 (the send pages'
#: "Response codes", e.g. https://learn.microsoft.com/en-us/rest/api/notificationhubs/send-fcm-native-notification).
MAX_NOTIFICATION_BYTES = 64 * 1024
MAX_INSTALLATION_BYTES = 64 * 1024
MAX_CONTROL_BYTES = 16 * 1024
API_VERSION = re.compile(r"20[0-9]{2}-[0-9]{2}(-[0-9]{2})?")
FORMATS = ("apple", "fcmv1", "template")
#: Formats of platforms the double does not play; ``gcm`` is FCM's retired legacy API.
UNPLAYED = ("gcm", "windows", "windowsphone", "adm", "baidu", "browser", "xiaomi")
#: The longest a test may wait on ``/_control/pushes``.
MAX_WAIT_SECONDS = 30.0
HUB = "{hub:[A-Za-z0-9][A-Za-z0-9._-]{0,259}}"
INSTALLATION = f"/{HUB}/installations/{{installation_id}}"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_app(double: NotificationHubsDouble) -> web.Application:
    """A fresh application serving ``double`` (mount it with ``add_subapp``)."""
    app = web.Application(middlewares=[hub_errors])
    app[DOUBLE] = double
    app.router.add_put(INSTALLATION, put_installation)
    app.router.add_get(INSTALLATION, get_installation)
    app.router.add_patch(INSTALLATION, patch_installation)
    app.router.add_delete(INSTALLATION, delete_installation)
    app.router.add_post(f"/{HUB}/messages", send)
    app.router.add_post(f"/{HUB}/messages/", send)
    app.router.add_get("/_control/state", guarded(get_state))
    app.router.add_get("/_control/pushes", guarded(get_pushes))
    app.router.add_get("/_control/events", guarded(events))
    app.router.add_post("/_control/faults", guarded(add_fault))
    app.router.add_delete("/_control/faults", guarded(clear_faults))
    app.router.add_post("/_control/reset", guarded(reset))

    async def close_feeds(_: web.Application) -> None:
        double.events.close()  # open pages would hold the server's shutdown up
    app.on_shutdown.append(close_feeds)
    return app


@web.middleware
async def hub_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answers refusals: Notification Hubs' XML on its routes, problems on the controls."""
    try:
        return await handler(request)
    except HubError as error:
        log.info("%s %s refused: %s", request.method, request.path, error.status)
        return error.response()
    except Refusal as refusal:
        if "/_control/" in request.path:
            return refusal.response()
        return HubError(refusal.status, refusal.detail, refusal.headers).response()


# --- Notification Hubs' REST -----------------------------------------------------------


async def _admit(request: web.Request, needed: Right, operation: str) -> NotificationHubsDouble:
    """Checks what every REST request must have, in Notification Hubs' order: a token
    for this URI, an api-version; then plays any fault set for ``operation``."""
    double = request.app[DOUBLE]
    authorize(request.headers.get("Authorization"), str(request.url), double.rules, needed)
    version = request.query.get("api-version", "")
    if not API_VERSION.fullmatch(version):
        raise HubError(400, "The api-version query parameter is required (e.g. 2020-06).")
    double.installations(request.match_info["hub"])  # 404 for an unknown hub
    fault = double.take_fault(cast(Any, operation))
    if fault is not None:
        log.info("fault %s answers %s %s", fault.status, request.method, request.path)
        raise fault.error()
    return double


def _installation_id(request: web.Request) -> str:
    installation_id = request.match_info["installation_id"]
    if not installations.ID.fullmatch(installation_id):
        raise HubError(400, "The installation id is 1 to 256 characters, no spaces.")
    return installation_id


async def _json_body(request: web.Request, limit: int) -> Any:
    body = await read_body(request, limit, server="Notification Hubs")
    try:
        return json.loads(body)
    except ValueError:
        raise HubError(400, "The body is not JSON.") from None


async def put_installation(request: web.Request) -> web.Response:
    double = await _admit(request, "Listen", "installation")
    installation_id = _installation_id(request)
    body = await _json_body(request, MAX_INSTALLATION_BYTES)
    double.put(request.match_info["hub"], installations.validate(body, installation_id))
    return web.Response(status=200)


def _found(double: NotificationHubsDouble, request: web.Request) -> dict[str, Any]:
    installation_id = _installation_id(request)
    installation = double.installations(request.match_info["hub"]).get(installation_id)
    if installation is None:
        raise HubError(404, f"No installation has the id {installation_id[:80]!r}.")
    return installation


async def get_installation(request: web.Request) -> web.Response:
    double = await _admit(request, "Listen", "installation")
    return web.json_response(_found(double, request))


async def patch_installation(request: web.Request) -> web.Response:
    double = await _admit(request, "Listen", "installation")
    installation = _found(double, request)
    operations = await _json_body(request, MAX_INSTALLATION_BYTES)
    double.put(request.match_info["hub"], installations.patch(installation, operations))
    # https://learn.microsoft.com/en-us/rest/api/notificationhubs/update-installation,
    # "Response codes": 204 No Content.
    return web.Response(status=204)


async def delete_installation(request: web.Request) -> web.Response:
    double = await _admit(request, "Listen", "installation")
    double.delete(request.match_info["hub"], _installation_id(request))
    return web.Response(status=204)


async def send(request: web.Request) -> web.Response:
    double = await _admit(request, "Send", "send")
    kind = request.headers.get("ServiceBusNotification-Format", "").lower()
    if kind in UNPLAYED:
        raise HubError(400, f"ServiceBusNotification-Format {kind!r}: this double plays "
                            f"{', '.join(FORMATS)} (gcm is FCM's retired legacy API).")
    if kind not in FORMATS:
        raise HubError(400, f"ServiceBusNotification-Format must be one of {', '.join(FORMATS)}.")
    if request.content_type != "application/json":
        raise HubError(400, "Content-Type must be application/json;charset=utf-8.")
    expression = request.headers.get("ServiceBusNotification-Tags")
    match = parse(expression) if expression is not None else None
    body = await read_body(request, MAX_NOTIFICATION_BYTES, server="Notification Hubs")
    document = payloads.parse_body(cast(payloads.Format, kind), body)
    hub = request.match_info["hub"]
    notification_id, _ = double.send(hub, cast(payloads.Format, kind), document, match,
                                     expression, request.headers)
    headers = {}
    if double.tier == "Standard":  # only Standard tracks a notification by id
        location = request.url.with_path(f"{request.path.rstrip('/')}/{notification_id}")
        headers["Location"] = str(location)
    return web.Response(status=201, headers=headers)


# --- the controls ------------------------------------------------------------------------

def guarded(handler: Handler) -> Handler:
    """``handler`` behind the Twilio sandbox's rule for its controls (localhttp's
    same_origin: no other site's page may act here, 403/415), its answers this
    origin's only."""

    async def checked(request: web.Request) -> web.StreamResponse:
        same_origin.check(request, "the Notification Hubs double")
        response = await handler(request)
        if not response.prepared:  # the feed's stream says so itself
            response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
        return response
    return checked


async def _control_json(request: web.Request) -> Any:
    body = await read_body(request, MAX_CONTROL_BYTES, server="the Notification Hubs double")
    try:
        return json.loads(body) if body else None
    except ValueError:
        raise Refusal(400, "The body must be JSON.") from None


async def get_state(request: web.Request) -> web.Response:
    return web.json_response(request.app[DOUBLE].state())


async def get_pushes(request: web.Request) -> web.Response:
    """The pushes a device received; with ``at_least=N&wait=S``, once it has N (S seconds
    at most: then what it has, with 200 all the same, for the test to judge)."""
    double = request.app[DOUBLE]
    installation_id = request.query.get("installation_id", "")
    try:
        at_least = int(request.query.get("at_least", "0"))
        wait = float(request.query.get("wait", "0"))
    except ValueError:
        raise Refusal(400, "at_least is a whole number, wait a number of seconds.") from None
    if not installation_id or at_least < 0 or not 0 <= wait <= MAX_WAIT_SECONDS:
        raise Refusal(400, f"installation_id is required; wait is 0 to {MAX_WAIT_SECONDS:g}.")
    if at_least and wait:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await double.wait_for_pushes(installation_id, at_least)
    return web.json_response({"installation_id": installation_id,
                              "pushes": double.received(installation_id)})


async def events(request: web.Request) -> web.StreamResponse:
    double = request.app[DOUBLE]
    return await feed.serve(request, double.events, double.state)


async def add_fault(request: web.Request) -> web.Response:
    try:
        fault = Fault.from_json(await _control_json(request))
        request.app[DOUBLE].add_fault(fault)
    except ValueError as error:
        return problem_response(400, str(error), title="Invalid body")
    return web.json_response(fault.to_json(), status=201)


async def clear_faults(request: web.Request) -> web.Response:
    request.app[DOUBLE].clear_faults()
    return web.Response(status=204)


async def reset(request: web.Request) -> web.Response:
    request.app[DOUBLE].reset()
    return web.Response(status=204)
