"""The ``/_sandbox`` routes refuse cross-site requests: a web page elsewhere must not act here.

The sandbox listens on loopback, where every page the developer's browser opens
can send it requests: a page on ``localhost:3000`` could otherwise reset the
sandbox, set faults, or make it send signed webhooks again. So, under ``/_sandbox/``:

- A request with an ``Origin`` (browsers send one with every cross-origin request,
  and with every same-origin one that changes something) must come from the
  sandbox itself: the scheme and the very ``Host`` it was sent to. Another port is
  another origin, ``null`` is no origin: 403.
- A ``Sec-Fetch-Site`` (sent by browsers with every request, a GET too) must say
  ``same-origin`` or ``none`` (typed in, bookmarked): ``same-site`` is another port
  or name of the machine's, ``cross-site`` another site: 403.
- The rule: every request that may change something (any method but GET and
  HEAD) carries ``Content-Type: application/json``, a body-less POST or DELETE
  too, or is refused 415. A page cannot send that type to another origin
  without a CORS preflight, which the sandbox never grants, so even a browser that
  sends no ``Origin`` cannot act here.

Their GET answers say ``Cross-Origin-Resource-Policy: same-origin``, so that a page
elsewhere cannot even embed them (an ``<img>`` of a texter's media, a ``<script>``).

Twilio's REST routes (``/2010-04-01/...``) are not concerned: the twilio library
posts form bodies with Basic Auth, as it does to Twilio.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from localhttp.problem import Refusal

PREFIX = "/_sandbox/"
READING = frozenset({"GET", "HEAD"})
#: The Sec-Fetch-Site values of a request the sandbox's own page or its user made.
OWN_FETCHES = frozenset({"same-origin", "none"})


def check(request: web.BaseRequest) -> None:
    """Raise a 403 or 415 Refusal for a cross-site or non-JSON request to the controls."""
    if not request.path.startswith(PREFIX):
        return
    origin = request.headers.get("Origin")
    if origin is not None and origin.lower() not in _own_origins(request):
        raise Refusal(403, f"Requests from the page at {origin[:100]!r} are refused: only the "
                           "sandbox's own console may act on it (another port is another site).")
    fetched_from = request.headers.get("Sec-Fetch-Site")
    if fetched_from is not None and fetched_from.lower() not in OWN_FETCHES:
        raise Refusal(403, f"Requests sent from another site ({fetched_from[:30]!r}) are "
                           "refused: only the sandbox's own console may use it.")
    if request.method not in READING and request.content_type != "application/json":
        raise Refusal(415, "Send Content-Type: application/json with every request that changes "
                           "the sandbox, a body-less POST or DELETE too (curl: -H "
                           "'Content-Type: application/json').")


def _own_origins(request: web.BaseRequest) -> set[str]:
    host = request.headers.get("Host", "").lower()  # checked by the Host guard before
    return {f"http://{host}", f"https://{host}"}


@web.middleware
async def same_site_only(request: web.Request, handler: Any) -> web.StreamResponse:
    """:func:`check` each request (its Refusal is answered as a problem further out)."""
    check(request)
    return await handler(request)


async def same_origin_resources(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: mark what ``/_sandbox/`` GET answers as this origin's only."""
    if request.path.startswith(PREFIX) and request.method in READING:
        response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
