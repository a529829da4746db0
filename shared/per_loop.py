"""One client per event loop, kept between invocations and closed when replaced.

Clients that own a connection pool (Twilio's, the store's) must be reused to
keep connections alive, but an aiohttp session belongs to the loop it was
made on. The worker runs every ``async def main`` on one loop, so in practice
this is one client per process; tests run each invocation on a fresh loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


class PerLoop[K, V]:
    """The running loop's ``V``, made from a ``K`` (settings); remade when the key changes."""

    def __init__(self, make: Callable[[K], V], close: Callable[[V], Awaitable[None]]) -> None:
        self._make = make
        self._close = close
        self._made: dict[asyncio.AbstractEventLoop, tuple[K, V]] = {}
        self._closing: set[asyncio.Future[None]] = set()

    def get(self, key: K) -> V:
        loop = asyncio.get_running_loop()
        cached = self._made.get(loop)
        if cached is None or cached[0] != key:
            if cached is not None:  # settings reloaded (tests): the old one must not leak
                task = asyncio.ensure_future(self._close(cached[1]))
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
            cached = (key, self._make(key))
            self._made[loop] = cached
        return cached[1]

    async def close(self) -> None:
        """Close this loop's one (host shutdown, tests): it owns sockets."""
        cached = self._made.pop(asyncio.get_running_loop(), None)
        if cached is not None:
            await self._close(cached[1])
