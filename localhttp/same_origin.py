"""Controls a developer's own pages may use, and no other site's: the rule both local
doubles (the Twilio sandbox's ``/_sandbox/``, the Notification Hubs double's
``/_control/``) apply to their controls.

They listen on loopback, where every page the developer's browser opens can send them
requests. So:

- A request with an ``Origin`` (browsers send one with every cross-origin request, and
  with every same-origin one that changes something) must come from the server itself:
  the scheme and the very ``Host`` it was sent to. Another port is another origin,
  ``null`` is no origin: 403.
- A ``Sec-Fetch-Site`` (sent by browsers with every request, a GET too) must say
  ``same-origin`` or ``none`` (typed in, bookmarked): ``same-site`` is another port or
  name of the machine's, ``cross-site`` another site: 403.
- Every request that may change something (any method but GET and HEAD) carries
  ``Content-Type: application/json``, a body-less POST or DELETE too, or is refused
  415. A page cannot send that type to another origin without a CORS preflight, which
  is never granted, so even a browser that sends no ``Origin`` cannot act.
"""

from __future__ import annotations

from aiohttp import web

from .problem import Refusal

READING = frozenset({"GET", "HEAD"})
#: The Sec-Fetch-Site values of a request the server's own page or its user made.
OWN_FETCHES = frozenset({"same-origin", "none"})


def check(request: web.BaseRequest, server: str) -> None:
    """Raise a 403 or 415 Refusal for a cross-site or non-JSON request; ``server`` names
    the server in the refusal (``the sandbox``)."""
    origin = request.headers.get("Origin")
    if origin is not None and origin.lower() not in own_origins(request):
        raise Refusal(403, f"Requests from the page at {origin[:100]!r} are refused: only "
                           f"{server}'s own pages may act on it (another port is another "
                           "site).")
    fetched_from = request.headers.get("Sec-Fetch-Site")
    if fetched_from is not None and fetched_from.lower() not in OWN_FETCHES:
        raise Refusal(403, f"Requests sent from another site ({fetched_from[:30]!r}) are "
                           f"refused: only {server}'s own pages may use it.")
    if request.method not in READING and request.content_type != "application/json":
        raise Refusal(415, f"Send Content-Type: application/json with every request that "
                           f"changes {server}, a body-less POST or DELETE too (curl: -H "
                           "'Content-Type: application/json').")


def own_origins(request: web.BaseRequest) -> set[str]:
    """The request's own origins (the Host it was sent to, checked by the Host guard)."""
    host = request.headers.get("Host", "").lower()
    return {f"http://{host}", f"https://{host}"}
