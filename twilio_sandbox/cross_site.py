"""The ``/_sandbox`` routes refuse cross-site requests: a web page elsewhere must not act here.

The sandbox listens on loopback, where every page the developer's browser opens
can send it requests: a page on ``localhost:3000`` could otherwise reset the
sandbox, set faults, or make it send signed webhooks again. So, under ``/_sandbox/``:

localhttp/same_origin.py's rule, which the Notification Hubs double's controls
follow too: an ``Origin`` must be the sandbox's own, a ``Sec-Fetch-Site`` own
(``same-origin`` or ``none``), else 403; every request that may change something
says ``Content-Type: application/json``, which no other origin's page can send
without a preflight, never granted, else 415.

Their GET answers say ``Cross-Origin-Resource-Policy: same-origin``, so that a page
elsewhere cannot even embed them (an ``<img>`` of a texter's media, a ``<script>``).

Twilio's REST routes (``/2010-04-01/...``) are not concerned: the twilio library
posts form bodies with Basic Auth, as it does to Twilio.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from localhttp import same_origin

PREFIX = "/_sandbox/"
READING = same_origin.READING


def check(request: web.BaseRequest) -> None:
    """Raise a 403 or 415 Refusal for a cross-site or non-JSON request to the controls
    (localhttp/same_origin.py's rule, shared with the Notification Hubs double)."""
    if request.path.startswith(PREFIX):
        same_origin.check(request, "the sandbox")


@web.middleware
async def same_site_only(request: web.Request, handler: Any) -> web.StreamResponse:
    """:func:`check` each request (its Refusal is answered as a problem further out)."""
    check(request)
    return await handler(request)


async def same_origin_resources(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: mark what ``/_sandbox/`` GET answers as this origin's only."""
    if request.path.startswith(PREFIX) and request.method in READING:
        response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
