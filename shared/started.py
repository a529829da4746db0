"""Work started now and awaited later, so that independent round trips overlap."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable


def started[T](work: Awaitable[T]) -> asyncio.Future[T]:
    """``work`` running from now on. A caller that leaves without awaiting it (a replayed
    request, a refusal) cancels it; its outcome is then nobody's and is not reported."""
    task = asyncio.ensure_future(work)
    task.add_done_callback(_retrieved)
    return task


def _retrieved(task: asyncio.Future[object]) -> None:
    if not task.cancelled():
        task.exception()
