"""The Devices view's live feed: ``GET /notificationhubs/_control/events`` (Server-Sent Events).

A subscriber first gets ``history`` (every device and the pushes kept, bounded),
then ``device`` (registered or changed), ``device-removed``, ``push`` (one
device received one notification), ``controls`` (faults) and ``reset`` as they
happen; ``history`` again if it fell more than ``QUEUE_LIMIT`` events behind.
At most ``MAX_SUBSCRIBERS`` at once (then 503 with ``Retry-After``); one that
takes nothing for ``SEND_TIMEOUT`` seconds is dropped. The same shape as the
Twilio sandbox's feed, kept apart so that this package stands alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

from aiohttp import web
from aiohttp_sse import EventSourceResponse

from .errors import error_response

log = logging.getLogger(__name__)

QUEUE_LIMIT = 1000
MAX_SUBSCRIBERS = 20
SEND_TIMEOUT = 30.0
PING_SECONDS = 15.0
RETRY_AFTER = 5
CLOSE_CHECK_SECONDS = 0.25
#: An event that tells a subscriber to read the history again.
RESYNC = ("resync", "{}")

Event = tuple[str, str]


class Broadcast:
    """Publishes events to every live subscriber's bounded queue; keeps no history."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[Event | None]] = set()

    @property
    def subscribers(self) -> int:
        return len(self._queues)

    def publish(self, kind: str, data: Any) -> None:
        event = (kind, json.dumps(data, default=str))
        for queue in self._queues:
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                _drain(queue)
                queue.put_nowait(RESYNC)

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[asyncio.Queue[Event | None]]:
        queue: asyncio.Queue[Event | None] = asyncio.Queue(QUEUE_LIMIT)
        self._queues.add(queue)
        try:
            yield queue
        finally:
            self._queues.discard(queue)

    def close(self) -> None:
        for queue in self._queues:
            _drain(queue)
            queue.put_nowait(None)


def _drain(queue: asyncio.Queue[Event | None]) -> None:
    while not queue.empty():
        queue.get_nowait()


async def serve(request: web.Request, broadcast: Broadcast,
                history: Callable[[], dict[str, Any]]) -> web.StreamResponse:
    """The feed for one subscriber: ``history()``, then the events as they come."""
    if broadcast.subscribers >= MAX_SUBSCRIBERS:
        log.warning("devices feed refused: %d subscribers already", broadcast.subscribers)
        return error_response(503, f"At most {MAX_SUBSCRIBERS} live pages: close one.",
                              {"Retry-After": str(RETRY_AFTER)})
    stream = EventSourceResponse(send_timeout=SEND_TIMEOUT, ping_interval=PING_SECONDS)
    stream.headers["Cross-Origin-Resource-Policy"] = "same-origin"
    with broadcast.subscribe() as queue:
        try:
            await stream.prepare(request)
            async with stream:
                await stream.send(json.dumps(history(), default=str), event="history")
                while (event := await _next(request, queue)) is not None:
                    if event is RESYNC:
                        event = ("history", json.dumps(history(), default=str))
                    await stream.send(event[1], event=event[0])
        except (ConnectionError, TimeoutError):
            log.info("devices feed to %s closed", request.remote)
    return stream


async def _next(request: web.Request, queue: asyncio.Queue[Event | None]) -> Event | None:
    """The next event; ConnectionResetError once the page has gone (aiohttp does not say
    so to a handler that waits, so it looks every ``CLOSE_CHECK_SECONDS``)."""
    getting = asyncio.ensure_future(queue.get())
    try:
        while True:
            done, _ = await asyncio.wait({getting}, timeout=CLOSE_CHECK_SECONDS)
            if done:
                return getting.result()
            transport = request.transport
            if transport is None or transport.is_closing():
                raise ConnectionResetError("the page has gone")
    finally:
        getting.cancel()
