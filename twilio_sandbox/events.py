"""What happens in the sandbox, as a stream of events the console (or any script) follows.

The sandbox's code changes its records (messages, calls, webhooks) by plain
assignment, here and wherever new behaviour is added. A :class:`Tracked` record
reports its own changes, so every one of them reaches the :class:`EventHub`
without each change site knowing about the console; changes made in one go
(one ``update``, or several assignments before the next await) become one event.

Subscribers get events live from the moment they subscribe; what happened
before is the sandbox's (bounded) records, which a new subscriber reads first
(see feed.py). Subscribers are few by design: past ``max_subscribers`` the hub
refuses the next one, so that open pages cannot hold the process's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from localhttp import broadcast
from localhttp.broadcast import TooManySubscribers

from .masking import mask

#: Events a subscriber may fall behind by before it is told to start over.
QUEUE_LIMIT = broadcast.QUEUE_LIMIT
#: Subscribers at once, by default: a few console tabs and scripts.
MAX_SUBSCRIBERS = broadcast.MAX_SUBSCRIBERS
#: Which field names the record an event is about, by kind.
_RECORD_ID = {"message": "sid", "call": "sid", "webhook": "id"}
_NUMBER = re.compile(r"\+[1-9][0-9]{6,14}")


@dataclass(frozen=True)
class Event:
    """One thing that happened: ``kind`` names it, ``data`` is its :func:`envelope`;
    ``record`` names the record it shows (``message:SM...``), if any."""

    id: int
    kind: str
    data: str
    record: str | None = None


#: What a subscriber receives when it fell too far behind: read the records again.
RESYNC = Event(0, "resync", "{}")


def envelope(data: Any) -> str:
    """``{"data": ..., "masked": {number: masked}}`` as JSON text.

    Each phone number in ``data`` comes with its masked form, by the sandbox's own
    rule (masking.py, as its log lines show numbers), so a page needs no rule of its own.
    """
    return wrap(json.dumps(data, default=str))


def wrap(text: str) -> str:
    """:func:`envelope` of data already written as JSON ``text``."""
    masked = {number: mask(number) for number in set(_NUMBER.findall(text))}
    return f'{{"data": {text}, "masked": {json.dumps(masked)}}}'


def record_key(kind: str, record: Any) -> str | None:
    """``message:SM...``, ``call:CA...``, ``webhook:12``: what an event of ``kind`` is about."""
    field = _RECORD_ID.get(kind)
    if field is None or not isinstance(record, dict) or record.get(field) is None:
        return None
    return f"{kind}:{record[field]}"


def stamp() -> str:
    """An ISO 8601 UTC time with milliseconds, the console's clock."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Subscription:
    """One subscriber's queue: :meth:`next` is the next event, None once the hub closed."""

    def __init__(self, queue: asyncio.Queue[Event | None]) -> None:
        self.queue = queue

    async def next(self) -> Event | None:
        return await self.queue.get()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._events()

    async def _events(self) -> AsyncIterator[Event]:
        while (event := await self.next()) is not None:
            yield event


class EventHub:
    """Publishes numbered events to every live subscriber (localhttp's broadcast, which
    drops a stalled page's backlog for a RESYNC); holds no history of its own."""

    def __init__(self, max_subscribers: int = MAX_SUBSCRIBERS) -> None:
        self._broadcast = broadcast.Broadcast[Event](RESYNC, max_subscribers=max_subscribers)
        self._last_id = 0
        #: Subscribers waiting for their client to take what was written (feed.py): a
        #: page that does not read stays counted, holding what it was sent, no more.
        self.waiting_on_client = 0

    @property
    def max_subscribers(self) -> int:
        return self._broadcast.max_subscribers

    @max_subscribers.setter
    def max_subscribers(self, value: int) -> None:
        self._broadcast.max_subscribers = value

    @property
    def last_id(self) -> int:
        return self._last_id

    @property
    def subscribers(self) -> int:
        return self._broadcast.subscribers

    def publish(self, kind: str, data: Any) -> Event:
        self._last_id += 1
        event = Event(self._last_id, kind, envelope(data), record_key(kind, data))
        self._broadcast.publish(event)
        return event

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[Subscription]:
        """Events from now on, until the hub closes (``with hub.subscribe() as events``).

        Raises TooManySubscribers when ``max_subscribers`` are subscribed already.
        """
        with self._broadcast.subscribe() as queue:
            yield Subscription(queue)

    def close(self) -> None:
        """End every subscription (the sandbox is stopping)."""
        self._broadcast.close()


__all__ = ["QUEUE_LIMIT", "RESYNC", "Event", "EventHub", "Subscription", "TooManySubscribers",
           "Tracked"]


class Tracked(dict[str, Any]):
    """A record (a dict, as JSON-ready as before) that reports its changes.

    ``on_change(record)`` runs once per burst of changes: soon after them on the
    running loop, or at once when there is none. ``steps`` lists each status the
    record took, with its time: what the console draws as a timeline.
    """

    def __init__(self, data: dict[str, Any], on_change: Callable[[Tracked], None]) -> None:
        super().__init__(data)
        self.steps: list[dict[str, str]] = []
        if "status" in data:
            self.steps.append({"status": str(data["status"]), "at": stamp()})
        self._on_change = on_change
        self._pending = False

    def view(self) -> dict[str, Any]:
        """The record with its steps: what an event carries."""
        return {**self, "steps": self.steps}

    def __setitem__(self, key: str, value: Any) -> None:
        self._changing({key: value})
        super().__setitem__(key, value)

    def update(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        changes = dict(*args, **kwargs)
        self._changing(changes)
        super().update(changes)

    def _changing(self, changes: dict[str, Any]) -> None:
        status = changes.get("status")
        if status is not None and status != self.get("status"):
            self.steps.append({"status": str(status), "at": stamp()})
        self.changed()

    def changed(self) -> None:
        """Report a change made inside a value (a list grown in place)."""
        if self._pending:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._on_change(self)
            return
        self._pending = True
        loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._pending = False
        self._on_change(self)
