"""The asyncio load client: timed single requests, bursts, and bounded-concurrency runs.

One aiohttp session per figure, its connections kept alive, so the client
costs the same on both sides of every ratio. A request that does not get the
status it expects stops the benchmark: a figure over failed requests would
be meaningless.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import aiohttp

from bench.stack import BenchError

REQUEST_TIMEOUT = 60.0


@dataclass(frozen=True)
class Call:
    """One HTTP request, and the status that means it worked."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    expect: int = 200


def session(limit: int) -> aiohttp.ClientSession:
    """A client session holding at most ``limit`` connections (0: no limit)."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, force_close=False),
        timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT),
    )


async def send(client: aiohttp.ClientSession, call: Call) -> None:
    async with client.request(call.method, call.url, headers=call.headers,
                              data=call.body) as response:
        body = await response.read()
    if response.status != call.expect:
        raise BenchError(f"{call.method} {call.url} answered {response.status}, "
                         f"not {call.expect}: {body[:300]!r}")


async def timed(client: aiohttp.ClientSession, call: Call) -> float:
    """Seconds from sending ``call`` to having read its whole answer."""
    started = time.perf_counter()
    await send(client, call)
    return time.perf_counter() - started


async def burst(client: aiohttp.ClientSession, calls: Iterable[Call]) -> float:
    """Send every call at once; seconds until the last answer."""
    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for call in calls:
            group.create_task(send(client, call))
    return time.perf_counter() - started


async def drive(client: aiohttp.ClientSession, calls: Iterator[Call], concurrency: int) -> float:
    """Send ``calls`` with at most ``concurrency`` in flight; seconds for all of them."""

    async def worker() -> None:
        for call in calls:  # one shared iterator: each call is taken by one worker
            await send(client, call)

    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(worker())
    return time.perf_counter() - started
