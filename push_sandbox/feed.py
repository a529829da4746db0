"""The Devices view's live feed: ``GET /notificationhubs/_control/events`` (Server-Sent Events).

A subscriber first gets ``history`` (every device and the pushes kept, bounded),
then ``device`` (registered or changed), ``device-removed``, ``push`` (one
device received one notification), ``controls`` (faults) and ``reset`` as they
happen; ``history`` again if it fell more than ``broadcast.QUEUE_LIMIT`` events behind.
At most ``MAX_SUBSCRIBERS`` at once (then 503 with ``Retry-After``); one that
takes nothing for ``SEND_TIMEOUT`` seconds is dropped. The fan-out is localhttp's
broadcast, as the Twilio sandbox's feed's.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp_sse import EventSourceResponse

from localhttp import broadcast
from localhttp.broadcast import TooManySubscribers, closed, next_or_gone

from .errors import error_response

log = logging.getLogger(__name__)

MAX_SUBSCRIBERS = broadcast.MAX_SUBSCRIBERS
SEND_TIMEOUT = 30.0
PING_SECONDS = 15.0
RETRY_AFTER = 5
#: An event that tells a subscriber to read the history again.
RESYNC = ("resync", "{}")

Event = tuple[str, str]


class Broadcast(broadcast.Broadcast[Event]):
    """localhttp's fan-out of ``(kind, JSON text)`` events, resyncing a stalled page."""

    def __init__(self) -> None:
        super().__init__(RESYNC, max_subscribers=MAX_SUBSCRIBERS)

    def publish(self, kind: str, data: Any) -> None:  # type: ignore[override]
        super().publish((kind, json.dumps(data, default=str)))


async def serve(request: web.Request, events: Broadcast,
                history: Callable[[], dict[str, Any]]) -> web.StreamResponse:
    """The feed for one subscriber: ``history()``, then the events as they come."""
    try:
        with events.subscribe() as queue:
            return await _stream(request, queue, history)
    except TooManySubscribers:
        log.warning("devices feed refused: %d subscribers already", events.subscribers)
        return error_response(503, f"At most {MAX_SUBSCRIBERS} live pages: close one.",
                              {"Retry-After": str(RETRY_AFTER)})


async def _stream(request: web.Request, queue: asyncio.Queue[Event | None],
                  history: Callable[[], dict[str, Any]]) -> web.StreamResponse:
    stream = EventSourceResponse(send_timeout=SEND_TIMEOUT, ping_interval=PING_SECONDS)
    stream.headers["Cross-Origin-Resource-Policy"] = "same-origin"
    try:
        await stream.prepare(request)
        async with stream:
            await stream.send(json.dumps(history(), default=str), event="history")
            gone = asyncio.ensure_future(closed(request, stream))
            try:
                while (event := await next_or_gone(queue, gone)) is not None:
                    if event is RESYNC:
                        event = ("history", json.dumps(history(), default=str))
                    await stream.send(event[1], event=event[0])
            finally:
                gone.cancel()
    except (ConnectionError, TimeoutError):
        log.info("devices feed to %s closed", request.remote)
    return stream
