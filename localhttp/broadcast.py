"""A live feed's fan-out: every subscriber gets what is published, none holds the
process's memory.

Both local doubles' consoles follow their state over Server-Sent Events. Each
subscriber has a bounded queue: one that falls ``queue_limit`` behind (a stalled
page) has its backlog dropped and gets ``resync`` (read everything again) instead.
Past ``max_subscribers`` the next one is refused (TooManySubscribers), so that open
pages cannot hold the process either. :func:`next_or_gone` waits for a subscriber's
next item, or for its page to go: aiohttp tells a waiting handler nothing of that.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from aiohttp import web
from aiohttp_sse import EventSourceResponse

#: Items a subscriber may fall behind by before it is told to start over.
QUEUE_LIMIT = 1000
#: Subscribers at once, by default: a few console tabs and scripts.
MAX_SUBSCRIBERS = 20
#: Seconds between looks at whether a waiting subscriber's connection is still open.
CLOSE_CHECK_SECONDS = 0.25


class TooManySubscribers(Exception):
    """The broadcast already serves ``max_subscribers``."""


class Broadcast[T]:
    """Publishes items to every live subscriber's bounded queue; holds no history."""

    def __init__(self, resync: T, *, queue_limit: int = QUEUE_LIMIT,
                 max_subscribers: int = MAX_SUBSCRIBERS) -> None:
        self.resync = resync
        self.queue_limit = queue_limit
        self.max_subscribers = max_subscribers
        self._queues: set[asyncio.Queue[T | None]] = set()

    @property
    def subscribers(self) -> int:
        return len(self._queues)

    def publish(self, item: T) -> None:
        for queue in self._queues:
            try:
                queue.put_nowait(item)
            except asyncio.QueueFull:
                _drain(queue)  # a stalled page: drop its backlog, tell it to start over
                queue.put_nowait(self.resync)

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[asyncio.Queue[T | None]]:
        """Items from now on, then None once closed; TooManySubscribers past the limit."""
        if len(self._queues) >= self.max_subscribers:
            raise TooManySubscribers(f"{len(self._queues)} subscribers already")
        queue: asyncio.Queue[T | None] = asyncio.Queue(self.queue_limit)
        self._queues.add(queue)
        try:
            yield queue
        finally:
            self._queues.discard(queue)

    def close(self) -> None:
        """End every subscription (the server is stopping)."""
        for queue in self._queues:
            if queue.full():
                _drain(queue)
            queue.put_nowait(None)


def _drain(queue: asyncio.Queue[object]) -> None:
    while not queue.empty():
        queue.get_nowait()


async def closed(request: web.Request, stream: EventSourceResponse) -> None:
    """Return once the client's connection is gone (or its keep-alive failed)."""
    while stream.is_connected() and (transport := request.transport) is not None \
            and not transport.is_closing():  # noqa: ASYNC110 - aiohttp has no event for it
        await asyncio.sleep(CLOSE_CHECK_SECONDS)


async def next_or_gone[T](queue: asyncio.Queue[T | None], gone: asyncio.Future[None]) -> T | None:
    """The queue's next item; ConnectionResetError once ``gone`` (:func:`closed`) is done."""
    getting = asyncio.ensure_future(queue.get())
    await asyncio.wait({getting, gone}, return_when=asyncio.FIRST_COMPLETED)
    if not getting.done():
        getting.cancel()
        raise ConnectionResetError("the connection was closed")
    return getting.result()
