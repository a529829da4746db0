"""The host's own controls, beside the app's functions: ``POST /_devhost/<name>``.

Only ``python -m devhost`` adds them (``FunctionHost(controls=...)``); Azure has
none. A web page must not be able to use them (a page on another local port
could otherwise reset what the developer is looking at), so before a control
runs, after the loopback ``Host`` guard every route has:

- the method must be POST (405);
- the request must come from this machine (403), even when the host is bound
  to another address for a phone on the network to reach the app; a tunnel
  agent (ngrok, cloudflared) connects from this machine too, so a request
  that says it was forwarded (``X-Forwarded-For``, ``Forwarded``, ...) or
  names a ``Host`` other than a loopback one is refused as well (403);
- it must carry this run's control token in ``X-Devhost-Control`` (403): the
  launcher makes a fresh one each run and gives it to the terminal and the
  sandbox, not to whoever reaches the port;
- an ``Origin`` other than the host's own, or ``Sec-Fetch-Site`` saying the
  request comes from another site or origin, is refused (403);
- the body must be sent as ``Content-Type: application/json`` (415), which a
  page cannot send to another origin without a CORS preflight this host never
  grants; it may be empty or a JSON object, which no control reads (400 otherwise).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web

from devhost.request_guard import BODY_TIMEOUT_SECONDS, read_body
from localhttp.host_policy import is_loopback_address
from localhttp.problem import Refusal

#: A control: what it answers (a ``Refusal`` raised is answered as a problem).
Control = Callable[[], Awaitable[web.StreamResponse]]

PREFIX = "/_devhost/"
JSON = "application/json"
MAX_BODY_BYTES = 1024
#: The header that carries the run's control token.
CONTROL_HEADER = "X-Devhost-Control"
# Headers a proxy or tunnel adds: such a request comes from elsewhere, whatever its peer.
FORWARDING_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Forwarded-Host", "X-Original-Host",
                      "X-Real-IP")
# What Sec-Fetch-Site says of a request the host's own page or a tool (none) made.
SAME_ORIGIN = ("same-origin", "none")


async def run_control(request: web.BaseRequest, control: Control,
                      token: str) -> web.StreamResponse:
    """Check that ``request`` may use ``control`` (``token``: this run's), then run it."""
    if request.method != "POST":
        raise Refusal(405, "Send a POST.", headers={"Allow": "POST"})
    if not _from_this_machine(request):
        raise Refusal(403, "The host's controls answer this machine only (not through a "
                      "proxy or tunnel).")
    sent = request.headers.get(CONTROL_HEADER, "")
    if not token or not hmac.compare_digest(sent.encode(), token.encode()):
        raise Refusal(403, f"The host's controls need this run's token in '{CONTROL_HEADER}' "
                      "(python -m devhost prints it).")
    origin = request.headers.get("Origin")
    if origin is not None and origin.lower() != f"{request.scheme}://{request.host}".lower():
        raise Refusal(403, "The host's controls refuse requests from another origin (a web "
                      "page must not drive them).")
    if request.headers.get("Sec-Fetch-Site", "none").lower() not in SAME_ORIGIN:
        raise Refusal(403, "The host's controls refuse requests a page on another site or "
                      "origin makes.")
    media_type = request.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    if media_type != JSON:
        raise Refusal(415, f"Send the request with 'Content-Type: {JSON}' (and a body of {{}} "
                      "or none).", headers={"Accept-Post": JSON})
    body = await read_body(request, MAX_BODY_BYTES, BODY_TIMEOUT_SECONDS)
    if body.strip():
        try:
            document = json.loads(body)
        except (UnicodeDecodeError, ValueError, RecursionError):
            document = None
        if not isinstance(document, dict):
            raise Refusal(400, "The body must be a JSON object ({}) or empty.")
    return await control()


def _from_this_machine(request: web.BaseRequest) -> bool:
    """Whether the request comes from this machine, not through a proxy or tunnel."""
    if any(name in request.headers for name in FORWARDING_HEADERS):
        return False
    try:
        host_name = urlsplit(f"//{request.host}").hostname or ""
    except ValueError:
        return False
    return is_loopback_address(request.remote or "") and is_loopback_address(host_name)
