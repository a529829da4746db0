"""A request's body read within bounds: in size, so one request cannot fill the memory,
and in time, so a client that stops sending cannot hold a handler (the local host's
rule, which the Twilio sandbox keeps too)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from localhttp.problem import Refusal

#: How long a body may take to arrive once the request's head has (Kestrel's default).
BODY_TIMEOUT_SECONDS = 30.0


async def read_body(request: web.BaseRequest, limit: int,
                    deadline_seconds: float = BODY_TIMEOUT_SECONDS,
                    server: str = "this server") -> bytes:
    """The body as sent, never more than ``limit`` bytes of it held: 413 past ``limit``
    (from ``Content-Length`` before reading, else as it passes), 408 if it has not all
    come within ``deadline_seconds``, 400 if its framing is broken. ``server`` names
    whose limit a 413 speaks of."""
    if (request.content_length or 0) > limit:
        raise _too_large(limit, server)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(deadline_seconds):
            async for chunk in request.content.iter_any():
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit, server)
                chunks.append(chunk)
    except TimeoutError:
        late = f"The body did not arrive within {deadline_seconds:g} seconds."
        raise Refusal(408, late) from None
    except web.RequestPayloadError as error:  # e.g. broken chunked framing
        raise Refusal(400, f"The body could not be read: {error.message}") from None
    return b"".join(chunks)


def _too_large(limit: int, server: str) -> Refusal:
    return Refusal(413, f"The body is over {server}'s limit of {limit} bytes.")
