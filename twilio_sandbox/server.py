"""HTTP routes: Twilio's REST paths, and the ``/_sandbox`` controls for other processes.

The REST routes answer like ``https://api.twilio.com`` (auth, validation, resource
and error shapes); one middleware adds the configured latency and the injected
faults in front of them, and turns refusals into Twilio's error JSON. The control
routes are never delayed nor faulted, so a test can always reach them; they take
JSON only and refuse other sites' pages (see cross_site.py), and refuse bad input
with RFC 9457 problems. A connection that has not sent a whole request head
within ``HEADER_TIMEOUT_SECONDS`` is closed, as the local Functions host does.
"""

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from aiohttp import web
from multidict import MultiDict

from localhttp.host_policy import HostPolicy
from localhttp.problem import Refusal, problem_response

from . import bodies, console, feed, listing, recording_routes, resources, validation
from . import media as inbound_media
from .auth import authorize, basic_credentials
from .cross_site import same_origin_resources, same_site_only
from .errors import TwilioApiError, error_response
from .faults import Fault
from .magic import UNSUBSCRIBED
from .status_callbacks import CallbackFault

if TYPE_CHECKING:
    from .state import SandboxState

log = logging.getLogger(__name__)

SANDBOX = web.AppKey["SandboxState"]("sandbox")
ACCOUNT = web.RequestKey("account_sid", str)

REST_PREFIX = f"/{resources.API_VERSION}/"
ACCOUNT_ROUTE = f"/{resources.API_VERSION}/Accounts/{{account_sid}}"
MEDIA_ROUTE = f"{ACCOUNT_ROUTE}/Messages/{{sid}}/Media/{{media_sid:ME[0-9a-fA-F]{{32}}}}"
#: Where a media fetch is redirected: Twilio's short-lived media URL, no credentials needed.
MEDIA_FILES = "/_sandbox/media/"
MAX_PAGE_SIZE = 1000
#: Not JSON, though labelled so: what a broken proxy or a truncated answer looks like.
MALFORMED_BODY = b'{"sid": "SM'
#: Kestrel's RequestHeadersTimeout default, as the local Functions host has it: a
#: connection that has sent no whole request head by then (or idles that long
#: between requests) is closed, so slow-header clients are not held.
HEADER_TIMEOUT_SECONDS = 30.0

INDEX_TEXT = """\
Local Twilio sandbox.

This server stands in for https://api.twilio.com during development and tests.
Nothing real is sent: no message leaves this machine and no phone rings. Calls
fetch their TwiML from the app and record what the callee would hear.

REST:    POST/GET {prefix}Accounts/<AccountSid>/Messages.json and Calls.json
         GET .../Messages/<Sid>/Media.json, .../Media/<MediaSid>[.json]: an MMS's media
         GET .../Recordings.json, GET|DELETE .../Recordings/<RE>[.wav|.json]: voicemails
         GET .../Transcriptions.json, GET|DELETE .../Transcriptions/<TR>.json
Control: GET /_sandbox/state, POST|DELETE /_sandbox/faults,
         POST|DELETE /_sandbox/callback_faults, PUT /_sandbox/latency,
         POST /_sandbox/reset
         (every request but GET with Content-Type: application/json; no other site's page)
Console: /console/ (live view; its API is under /_sandbox/, see the README)
"""


#: What a client the sandbox refused for its Host name can do about it.
HOST_ADVICE = ("To answer another name (a forwarded port's), start it with --allow-host NAME: "
               "python -m devhost passes its own on to the sandbox.")


def build_app(sandbox: "SandboxState", hosts: HostPolicy | None = None,
              header_timeout: float = HEADER_TIMEOUT_SECONDS,
              mounted: Sequence[tuple[str, web.Application]] = ()) -> web.Application:
    """The aiohttp application serving ``sandbox``, to the ``Host`` names ``hosts`` allows,
    and each ``(prefix, sub-application)`` in ``mounted`` (its routes under the prefix).

    Bound to loopback, only loopback names: its state and console show every
    message, and its controls act as Twilio, so a web page must not reach them by
    DNS rebinding (a name of the page's that resolves to 127.0.0.1).
    """
    app = web.Application(
        middlewares=[_host_guard(hosts or HostPolicy(None)), same_site_only, twilio_rest],
        # aiohttp closes a connection idle that long from its start, head unfinished.
        handler_args={"keepalive_timeout": header_timeout},
        # aiohttp's default 1 MiB body cap holds app-wide: only POST /_sandbox/inbound/sms
        # reads more (media in base64 JSON), under a cap of its own (console.py).
    )
    app[SANDBOX] = sandbox
    app.on_response_prepare.append(same_origin_resources)
    app.router.add_get("/", index)
    app.router.add_post(f"{ACCOUNT_ROUTE}/Messages.json", create_message)
    app.router.add_get(f"{ACCOUNT_ROUTE}/Messages.json", list_messages)
    app.router.add_get(f"{ACCOUNT_ROUTE}/Messages/{{sid}}.json", fetch_message)
    app.router.add_post(f"{ACCOUNT_ROUTE}/Calls.json", create_call)
    app.router.add_get(f"{ACCOUNT_ROUTE}/Calls.json", list_calls)
    app.router.add_get(f"{ACCOUNT_ROUTE}/Calls/{{sid}}.json", fetch_call)
    app.router.add_get(f"{ACCOUNT_ROUTE}/Messages/{{sid}}/Media.json", list_media)
    app.router.add_get(f"{MEDIA_ROUTE}.json", fetch_media)
    app.router.add_delete(f"{MEDIA_ROUTE}.json", delete_media)
    app.router.add_get(MEDIA_ROUTE, media_content)
    app.router.add_get(f"{MEDIA_FILES}{{media_sid}}", media_file)
    recording_routes.add_routes(app, SANDBOX, ACCOUNT_ROUTE, ACCOUNT, _list)
    app.router.add_route("*", f"{REST_PREFIX}{{tail:.*}}", not_found)
    app.router.add_get("/_sandbox/state", get_state)
    app.router.add_post("/_sandbox/faults", add_fault)
    app.router.add_delete("/_sandbox/faults", clear_faults)
    app.router.add_post("/_sandbox/callback_faults", add_callback_fault)
    app.router.add_delete("/_sandbox/callback_faults", clear_callback_faults)
    app.router.add_put("/_sandbox/latency", set_latency)
    app.router.add_post("/_sandbox/reset", reset)
    console.add_routes(app, SANDBOX)
    prefixes = [prefix for prefix, _ in mounted]

    async def mounts(_: web.Request) -> web.Response:
        # The console's pages of another double look here before they follow its feed, so
        # that a sandbox serving none shows no failed request.
        return web.json_response({"mounted": prefixes})

    app.router.add_get("/_sandbox/mounts", mounts)
    for prefix, subapp in mounted:
        app.add_subapp(prefix, subapp)
    return app


def _host_guard(hosts: HostPolicy) -> Any:
    """Checks the Host name; answers every Refusal raised here or further in as a problem."""

    @web.middleware
    async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            hosts.check(request)
            return await handler(request)
        except Refusal as refusal:
            response = refusal.response()
            if refusal.status in (408, 413):  # the body was not read: do not wait for it
                response.force_close()
            return response
    return guard


# --- REST ------------------------------------------------------------------


@web.middleware
async def twilio_rest(request: web.Request, handler: Any) -> web.StreamResponse:
    """Latency, faults, authentication and error answers for every REST request."""
    if not request.path.startswith(REST_PREFIX):
        return await handler(request)
    sandbox = request.app[SANDBOX]
    with sandbox.serving():
        try:
            # Credentials first: a client that has none is refused before its body is read.
            account_sid = request.match_info.get("account_sid")
            if account_sid is not None:
                request[ACCOUNT] = authorize(
                    request.headers.get("Authorization"),
                    account_sid,
                    request.path,
                    sandbox.accounts,
                    sandbox.api_keys,
                )
            # Then the whole request, as Twilio reads it: a client that gives up during
            # the latency or a delay fault must not take the request back with it.
            try:
                async with asyncio.timeout(bodies.BODY_TIMEOUT_SECONDS):
                    await request.read()
            except TimeoutError:
                raise Refusal(408, f"The body did not arrive within "
                                   f"{bodies.BODY_TIMEOUT_SECONDS:g} seconds.") from None
            if sandbox.latency > 0:
                await asyncio.sleep(sandbox.latency)
            fault = sandbox.injector.pick(request.path)
            if fault is not None:
                log.info("fault %s hits %s %s", fault.kind, request.method, request.path)
                sandbox.controls_changed()
                if fault.kind != "delay":
                    return _faulted(request, fault)
                await asyncio.sleep(fault.delay)
            return await handler(request)
        except TwilioApiError as exc:
            # Twilio's messages quote the numbers: log the status and code only.
            log.info("%s %s refused: %s/%s", request.method, request.path, exc.status, exc.code)
            return exc.response()


def _faulted(request: web.Request, fault: Fault) -> web.StreamResponse:
    """The answer (or the lack of one) a non-delay fault gives."""
    if fault.kind == "rate_limit":
        return error_response(
            429, 20429, "Too Many Requests", headers={"Retry-After": str(fault.retry_after)}
        )
    if fault.kind == "malformed":
        return web.Response(status=201, body=MALFORMED_BODY, content_type="application/json")
    if fault.kind == "drop":
        if request.transport is not None:
            request.transport.abort()
        # Nothing reaches the client; aiohttp discards this once it sees the lost connection.
        return web.Response(status=499)
    code, message = fault.error()
    return error_response(fault.status, code, message)


async def _form(request: web.Request) -> MultiDict[str]:
    """The urlencoded parameters (repeated keys kept), text values only."""
    posted = await request.post()
    return MultiDict((key, value) for key, value in posted.items() if isinstance(value, str))


async def create_message(request: web.Request) -> web.Response:
    sandbox = request.app[SANDBOX]
    form = await _form(request)
    media_urls = form.getall("MediaUrl", [])
    validation.validate_message(form, media_urls, sandbox.check_numbers)
    if sandbox.is_opted_out(form.get("From"), form.get("To", ""), form.get("MessagingServiceSid")):
        raise TwilioApiError(400, UNSUBSCRIBED, "Attempt to send to unsubscribed recipient")
    snapshot = resources.request_snapshot(form.items())
    message = resources.build_message(request[ACCOUNT], form, media_urls, snapshot)
    message["auth_username"] = _credential_user(request)
    sandbox.record_message(message)
    return web.json_response(resources.public(message), status=201)


async def create_call(request: web.Request) -> web.Response:
    sandbox = request.app[SANDBOX]
    form = await _form(request)
    validation.validate_call(form, sandbox.check_numbers)
    app = validation.application(form, sandbox.twiml_apps, request[ACCOUNT])
    snapshot = resources.request_snapshot(form.items())
    call = resources.build_call(request[ACCOUNT], form, snapshot, app)
    call["auth_username"] = _credential_user(request)
    answer = resources.public(call)  # taken before the call starts ringing
    sandbox.record_call(call)
    return web.json_response(answer, status=201)


def _credential_user(request: web.Request) -> str | None:
    """Which credential the client used (account SID or API key SID), for tests to check."""
    credentials = basic_credentials(request.headers.get("Authorization"))
    return credentials[0] if credentials else None


def _list(request: web.Request, key: str, items: list[resources.Resource],
          names: tuple[str, ...] = ("To", "From", "Status"),
          date_sent: bool = False) -> web.Response:
    """A page of the account's ``items``, newest first, filtered by the query's ``names``
    (and ``DateSent`` if ``date_sent``), paged by ``PageToken`` (listing.py)."""
    query = request.query
    filters = {name: query[name] for name in names if name in query}
    dated, tests = listing.date_sent_filters(query) if date_sent else ({}, [])
    selected = [
        item
        for item in reversed(items)
        if item["account_sid"] == request[ACCOUNT]
        and all(item.get(name.lower()) == value for name, value in filters.items())
        and all(test(item) for test in tests)
    ]
    try:
        number = max(int(query.get("Page", "0")), 0)
        size = min(max(int(query.get("PageSize", "50")), 1), MAX_PAGE_SIZE)
    except ValueError:
        raise TwilioApiError(400, 20001, "Page and PageSize must be integers") from None
    start = listing.page_start(selected, query, number, size)
    body = resources.page(key, selected, request.path, {**filters, **dated}, number, size,
                          start, query.get("PageToken"))
    return web.json_response(body)


def _fetch(request: web.Request, items: list[resources.Resource]) -> web.Response:
    sid = request.match_info["sid"]
    for item in items:
        if item["sid"] == sid and item["account_sid"] == request[ACCOUNT]:
            return web.json_response(resources.public(item))
    raise TwilioApiError(404, 20404, f"The requested resource {request.path} was not found")


async def list_messages(request: web.Request) -> web.Response:
    # Messages filter by To, From and DateSent only (no Status): OpenAPI
    # /2010-04-01/Accounts/{AccountSid}/Messages.json.
    return _list(request, "messages", request.app[SANDBOX].messages, ("To", "From"),
                 date_sent=True)


async def list_calls(request: web.Request) -> web.Response:
    return _list(request, "calls", request.app[SANDBOX].calls)


async def fetch_message(request: web.Request) -> web.Response:
    return _fetch(request, request.app[SANDBOX].messages)


async def fetch_call(request: web.Request) -> web.Response:
    return _fetch(request, request.app[SANDBOX].calls)


def _media(request: web.Request) -> inbound_media.StoredMedia:
    """The Media resource the path names, of that message and account; else Twilio's 404."""
    media = request.app[SANDBOX].media.find(request.match_info["media_sid"])
    if (media is None or media.account_sid != request[ACCOUNT]
            or media.message_sid != request.match_info["sid"]):
        raise TwilioApiError(404, 20404, f"The requested resource {request.path} was not found")
    return media


def _media_resource(media: inbound_media.StoredMedia) -> resources.Resource:
    return resources.media_resource(media.account_sid, media.message_sid, media.sid,
                                    media.content_type, media.created)


async def list_media(request: web.Request) -> web.Response:
    kept = request.app[SANDBOX].media.of(request[ACCOUNT], request.match_info["sid"])
    # _list pages newest first; a message's media are listed in their order.
    return _list(request, "media_list", [_media_resource(media) for media in reversed(kept)])


async def fetch_media(request: web.Request) -> web.Response:
    return web.json_response(_media_resource(_media(request)))


async def delete_media(request: web.Request) -> web.Response:
    request.app[SANDBOX].media.delete(_media(request))
    return web.Response(status=204)


async def media_content(request: web.Request) -> web.Response:
    """The media itself, behind Basic Auth: a redirect to a URL that needs none, as Twilio
    redirects to its media CDN (media.py). Which 3xx Twilio answers is not documented."""
    media = _media(request)
    location = request.url.with_path(f"{MEDIA_FILES}{media.sid}").with_query(None)
    return web.Response(status=307, headers={"Location": str(location)})


async def media_file(request: web.Request) -> web.Response:
    """The short-lived media URL's content. In a sandbox of its own (CSP), never sniffed:
    a texter's HTML or SVG must not run as the sandbox's page, next to its controls."""
    media = request.app[SANDBOX].media.find(request.match_info["media_sid"])
    if media is None:
        return problem_response(404, "No media with this SID is kept (any more).",
                                title="Not found")
    return web.Response(body=media.body, headers={
        "Content-Type": media.content_type, "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox", "Cache-Control": "private"})


async def not_found(request: web.Request) -> web.Response:
    raise TwilioApiError(404, 20404, f"The requested resource {request.path} was not found")


# --- Control and index --------------------------------------------------------


async def index(request: web.Request) -> web.Response:
    return web.Response(text=INDEX_TEXT.format(prefix=REST_PREFIX))


async def get_state(request: web.Request) -> web.StreamResponse:
    return await feed.write_json(request, request.app[SANDBOX].state())


def _invalid(detail: str) -> web.Response:
    return problem_response(400, detail, title="Invalid body")


async def _json(request: web.Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise Refusal(400, "The body must be JSON.") from None


async def add_fault(request: web.Request) -> web.Response:
    try:
        fault = Fault.from_json(await _json(request))
    except (TypeError, ValueError) as exc:
        return _invalid(str(exc))
    request.app[SANDBOX].add_fault(fault)
    return web.json_response(fault.to_json(), status=201)


async def add_callback_fault(request: web.Request) -> web.Response:
    try:
        fault = CallbackFault.from_json(await _json(request))
    except ValueError as exc:
        return _invalid(str(exc))
    request.app[SANDBOX].add_callback_fault(fault)
    return web.json_response(fault.to_json(), status=201)


async def clear_callback_faults(request: web.Request) -> web.Response:
    request.app[SANDBOX].clear_callback_faults()
    return web.Response(status=204)


async def clear_faults(request: web.Request) -> web.Response:
    request.app[SANDBOX].clear_faults()
    return web.Response(status=204)


async def set_latency(request: web.Request) -> web.Response:
    data = await _json(request)
    seconds = data.get("seconds") if isinstance(data, dict) else None
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        return _invalid('expected {"seconds": <number >= 0>}')
    request.app[SANDBOX].latency = float(seconds)
    return web.json_response({"seconds": float(seconds)})


async def reset(request: web.Request) -> web.Response:
    request.app[SANDBOX].reset()
    return web.Response(status=204)
