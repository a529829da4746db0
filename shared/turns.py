"""Rows one instance keeps between requests, and the turns its requests take at each.

Requests of one instance that write the same row (a rate-limit counter, a
conversation's summary) take turns at it instead of racing each other to the
store, where all but one would lose on the ETag, read again and retry: under
load the retries grow with the square of the requests. The ETag still
settles races between instances. A turn starts from the row as the last one
left it, so while no other instance writes the row a turn is one write,
without a read first.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from shared.store import Row, Store

#: Rows an instance remembers, per store; the least recently used go first.
KEPT = 4096


@dataclass
class Turn:
    """This instance's turn at one row, and the row as it last read or wrote it."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    row: Row | None = None  # None: not known here, read it
    holders: int = 0  # requests holding or waiting for the turn

    @contextlib.asynccontextmanager
    async def taken(self) -> AsyncIterator[None]:
        """This request's turn (after those already waiting)."""
        self.holders += 1
        try:
            async with self.lock:
                yield
        finally:
            self.holders -= 1

    def busy(self) -> bool:
        """In use: forgetting it now would let a second turn start at the same row."""
        return self.holders > 0


class Turns[T: Turn]:
    """The turns at the rows of one table, per store (one store per event loop: a lock
    belongs to its loop)."""

    def __init__(self, make: Callable[[], T], kept: int = KEPT) -> None:
        self._make = make
        self._kept = kept
        self._stores: weakref.WeakKeyDictionary[Store, OrderedDict[tuple[str, str], T]] = (
            weakref.WeakKeyDictionary())

    def at(self, store: Store, partition: str, key: str) -> T:
        kept = self._stores.setdefault(store, OrderedDict())
        found = kept.get((partition, key))
        if found is None:
            found = kept[(partition, key)] = self._make()
            while len(kept) > self._kept:
                oldest = next(iter(kept))
                if kept[oldest].busy():
                    break  # in use: kept until its turns end
                del kept[oldest]
        kept.move_to_end((partition, key))
        return found
