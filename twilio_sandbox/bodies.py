"""Bodies read within bounds: in size, so one request or answer cannot fill the memory,
and in time, so a client that stops sending cannot hold a handler.

The sandbox reads what developers and their app send it (requests) and what the app
answers its webhooks; any of them can be far larger or slower than Twilio would accept.
"""

from __future__ import annotations

from aiohttp import StreamReader, web

from localhttp.bodies import BODY_TIMEOUT_SECONDS as HOSTS_BODY_TIMEOUT
from localhttp.bodies import read_body

#: How long a request's body may take to arrive once its head has (the local host's own).
BODY_TIMEOUT_SECONDS = HOSTS_BODY_TIMEOUT


async def read_at_most(content: StreamReader, limit: int) -> tuple[bytes, bool]:
    """Up to ``limit`` bytes of ``content``, and whether that was all of it (the rest,
    if any, is left unread: the connection is closed rather than drained)."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await content.read(limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    data = b"".join(chunks)
    return data[:limit], size <= limit


def decode(data: bytes, charset: str | None) -> str:
    """``data`` as text in its declared charset, else UTF-8 (as aiohttp does for JSON)."""
    try:
        return data.decode(charset or "utf-8", "replace")
    except LookupError:  # a charset Python does not know
        return data.decode("utf-8", "replace")


async def discard(content: StreamReader) -> None:
    """Read ``content`` to its end, keeping nothing (so the connection can be reused)."""
    async for _ in content.iter_any():
        pass


async def read_request(request: web.BaseRequest, limit: int, seconds: float | None = None
                       ) -> bytes:
    """The request's body within ``limit`` bytes and ``seconds`` (``BODY_TIMEOUT_SECONDS``
    unless given): the local host's rule (``localhttp.bodies``)."""
    seconds = BODY_TIMEOUT_SECONDS if seconds is None else seconds
    return await read_body(request, limit, seconds, server="the sandbox")
