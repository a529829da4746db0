"""The client address Azure's front end reports, as the local host reports it.

On Azure the front end appends the address it accepted the connection from
to the request's ``X-Forwarded-For`` (keeping whatever the client sent before
it), so the app's per-caller rate limits key on the last entry
(``shared.limits.client_ip``). The local host does the same, so those limits
behave as they will on Azure.
"""

from __future__ import annotations

from aiohttp import web
from multidict import CIMultiDict

FORWARDED_FOR = "X-Forwarded-For"


def forwarded_for(request: web.BaseRequest) -> web.BaseRequest:
    """The request with its peer's address appended to ``X-Forwarded-For``."""
    peer = request.remote
    if not peer:
        return request
    if ":" in peer:
        peer = f"[{peer}]"
    headers: CIMultiDict[str] = CIMultiDict(request.headers)
    sent = ", ".join(headers.popall(FORWARDED_FOR, []))
    headers[FORWARDED_FOR] = f"{sent}, {peer}" if sent else peer
    return request.clone(headers=headers)
