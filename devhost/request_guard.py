"""What the host checks before a function sees a request, as Azure's front end would.

The host holds real Twilio credentials on a developer's machine, so it refuses
early and cheaply, reading as little as possible of what it refuses:

- header bytes outside printable ASCII: 400 (Kestrel refuses them too);
- a ``Host`` the host does not serve: 421. Bound to loopback it serves only
  ``localhost``, ``127.0.0.1`` and ``[::1]`` (any port), the app's declared
  public host (``PUBLIC_BASE_URL``, reached through a tunnel) and names it was
  given, so a web page cannot reach it through DNS rebinding;
- a ``Content-Encoding`` at all: 415. Azure hands a function the body as sent
  and this app decodes none, so nothing is ever decompressed here; a
  ``Transfer-Encoding`` other than ``chunked``: 501;
- a body over the host's cap: 413, from ``Content-Length`` before reading,
  else as the stream passes the cap; a body that does not arrive in time: 408.
"""

from __future__ import annotations

import re

from aiohttp import web

from localhttp import bodies
from localhttp.host_policy import HostPolicy
from localhttp.problem import Refusal

# Above the app's own 64 KiB cap, so the app answers oversized bodies as it would
# on Azure (whose front end allows 100 MB); low enough that 50 concurrent
# requests at the cap hold 50 MiB, not gigabytes.
MAX_BODY_BYTES = 1024 * 1024
# Kestrel's RequestHeadersTimeout default: a connection that has not sent a
# whole request head by then is closed (slow-header clients are not held).
HEADER_TIMEOUT_SECONDS = 30.0
BODY_TIMEOUT_SECONDS = bodies.BODY_TIMEOUT_SECONDS

_VISIBLE_ASCII = re.compile(r"[\t\x20-\x7e]*")


def check_header_bytes(request: web.BaseRequest) -> None:
    for name, value in request.raw_headers:
        if not _VISIBLE_ASCII.fullmatch(name.decode("latin-1")) or not _VISIBLE_ASCII.fullmatch(
            value.decode("latin-1")
        ):
            shown = name.decode("ascii", "backslashreplace")
            raise Refusal(400, f"Header {shown} holds bytes outside printable ASCII.")


def check_content_encoding(request: web.BaseRequest) -> None:
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in ("", "identity"):
        raise Refusal(
            415,
            "Content-Encoding is not accepted: send the body uncompressed.",
            headers={"Accept-Encoding": "identity"},
        )


def check_transfer_encoding(request: web.BaseRequest) -> None:
    """Only ``chunked`` framing: another transfer coding would reach the function still coded."""
    codings = [c.strip().lower() for c in request.headers.get("Transfer-Encoding", "").split(",")]
    if any(coding not in ("", "chunked") for coding in codings):
        raise Refusal(501, "Transfer-Encoding other than chunked is not implemented.")


async def read_body(request: web.BaseRequest, limit: int = MAX_BODY_BYTES,
                    deadline_seconds: float = BODY_TIMEOUT_SECONDS) -> bytes:
    """The body as sent, never more than ``limit`` bytes of it held (``localhttp.bodies``)."""
    return await bodies.read_body(request, limit, deadline_seconds, server="this host")


def check_head(request: web.BaseRequest, hosts: HostPolicy) -> None:
    """Every check that needs only the request head, cheapest first."""
    check_header_bytes(request)
    hosts.check(request)
    check_content_encoding(request)
    check_transfer_encoding(request)
    declared = request.headers.get("Content-Length")
    if declared is not None and not declared.isdigit():
        raise Refusal(400, "Content-Length is not a number.")
