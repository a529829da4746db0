"""The console's live feed (``GET /_sandbox/events``) and its history, written a page at a time.

A subscriber first reads the sandbox's history, then every change as it happens
(Server-Sent Events):

- ``history``: what is no record (controls, opt-outs, the app's URLs) and how many
  records follow, by kind: the page starts over;
- ``history-page``: ``{"kind": "webhook"|"message"|"call", "records": [...]}``,
  oldest first, webhooks first (a call shows its TwiML fetches);
- ``history-end``: the history is complete;
- then ``message``, ``call``, ``webhook``, ``controls``, ``opt-out``, ``reset`` as
  they happen; and the history again if the subscriber fell too far behind.

Nothing the size of the history is held per subscriber: each page is built when
the one before it has been written, so a client that stops reading stops the
writing, not the process's memory; one that takes nothing for ``SEND_TIMEOUT``
seconds is dropped. At most ``EventHub.max_subscribers`` subscribe at once: the
next is answered 503 with ``Retry-After``. A page that goes away (a closed tab)
ends its stream with one INFO line. ``GET /_sandbox/history`` and ``/_sandbox/state``
are written the same way, a page at a time, as one JSON document.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp_sse import EventSourceResponse

from localhttp.broadcast import closed, next_or_gone
from localhttp.problem import Refusal

from .events import RESYNC, Event, Subscription, TooManySubscribers, record_key, wrap

if TYPE_CHECKING:
    from .state import SandboxState

log = logging.getLogger(__name__)

#: JSON bytes a page of records reaches before it is sent.
PAGE_BYTES = 32 * 1024
#: Seconds between keep-alive comments.
PING_SECONDS = 15.0
#: Seconds a subscriber may take nothing before it is dropped.
SEND_TIMEOUT = 30.0
#: Seconds a refused subscriber is asked to wait.
RETRY_AFTER = 5
#: The records the history holds, in the order it sends them.
RECORD_KINDS = ("webhook", "message", "call")


def records(sandbox: SandboxState, kind: str) -> list[Any]:
    """The sandbox's (bounded) records of one kind, oldest first."""
    if kind == "webhook":
        return sandbox.webhooks.records
    return sandbox.messages if kind == "message" else sandbox.calls


def head(sandbox: SandboxState) -> dict[str, Any]:
    """The history's part that is no record, and how many records follow."""
    return {
        "opted_out": sandbox.opt_outs(),
        "controls": sandbox.controls(),
        "history": sandbox.history,
        "app": {"functions": sandbox.app.functions, "default_number": sandbox.default_number},
        "counts": {kind: len(records(sandbox, kind)) for kind in RECORD_KINDS},
    }


def history_document(sandbox: SandboxState) -> dict[str, Any]:
    """``GET /_sandbox/history``: everything the console shows, records as lists, oldest first."""
    document = head(sandbox)
    del document["counts"]
    return {**{f"{kind}s": list(records(sandbox, kind)) for kind in RECORD_KINDS}, **document}


async def events(request: web.Request, sandbox: SandboxState) -> web.StreamResponse:
    """The feed for one subscriber, or 503 when there are enough already."""
    hub = sandbox.events
    try:
        with hub.subscribe() as subscription:
            return await _serve(request, Feed(sandbox, subscription))
    except TooManySubscribers:
        log.warning("console feed refused: %d subscribers already", hub.subscribers)
        return Refusal(503, f"The sandbox serves {hub.max_subscribers} live pages at most: "
                            "close one (another tab or script) or try again shortly.",
                       headers={"Retry-After": str(RETRY_AFTER)}).response()


async def _serve(request: web.Request, feed: Feed) -> web.StreamResponse:
    stream = EventSourceResponse(send_timeout=SEND_TIMEOUT, ping_interval=PING_SECONDS)
    try:
        await stream.prepare(request)
        async with stream:
            await feed.run(request, stream)
    except (ConnectionError, TimeoutError) as gone:
        reason = "it took nothing for too long" if isinstance(gone, TimeoutError) else "it left"
        log.info("console feed to %s closed: %s", request.remote, reason)
    return stream


class Feed:
    """What one subscriber has been sent: its history, then the events that are news to it."""

    def __init__(self, sandbox: SandboxState, subscription: Subscription) -> None:
        self.sandbox, self.subscription = sandbox, subscription
        #: Events up to this one are in the history sent (its head was read after them).
        self.head_id = 0
        #: Per record: the last event its history page already showed.
        self.covered: dict[str, int] = {}

    async def run(self, request: web.Request, stream: EventSourceResponse) -> None:
        await self.send_history(stream)
        gone = asyncio.ensure_future(closed(request, stream))
        try:
            while True:
                event = await next_or_gone(self.subscription.queue, gone)
                if event is None:  # the sandbox is stopping
                    return
                if event is RESYNC:
                    await self.send_history(stream)
                elif not self.is_stale(event):
                    await self.send(stream, event.data, event.kind)
        finally:
            gone.cancel()

    def is_stale(self, event: Event) -> bool:
        """Whether the history sent already shows what ``event`` shows, or newer."""
        if event.id <= self.head_id:
            return True
        covered = self.covered.get(event.record) if event.record else None
        return covered is not None and event.id <= covered

    async def send_history(self, stream: EventSourceResponse) -> None:
        hub = self.sandbox.events
        self.head_id, self.covered = hub.last_id, {}
        snapshot = {kind: list(records(self.sandbox, kind)) for kind in RECORD_KINDS}
        await self.send(stream, wrap(json.dumps(head(self.sandbox), default=str)), "history")
        for kind, texts in self._pages(snapshot):
            page = f'{{"kind": "{kind}", "records": [{", ".join(texts)}]}}'
            await self.send(stream, wrap(page), "history-page")
        await self.send(stream, wrap("{}"), "history-end")

    async def send(self, stream: EventSourceResponse, data: str, kind: str) -> None:
        """Send one event, counted on the hub while the client has not taken it."""
        hub = self.sandbox.events
        hub.waiting_on_client += 1
        try:
            await stream.send(data, event=kind)
        finally:
            hub.waiting_on_client -= 1

    def _pages(self, snapshot: Mapping[str, list[Any]]) -> Iterator[tuple[str, list[str]]]:
        """Each page's records as JSON texts, built only when the page before was sent."""
        hub = self.sandbox.events
        for kind, kept in snapshot.items():
            texts: list[str] = []
            size = 0
            for record in kept:
                view = record.view()
                texts.append(json.dumps(view, default=str))
                size += len(texts[-1])
                key = record_key(kind, view)
                if key is not None:
                    self.covered[key] = hub.last_id
                if size >= PAGE_BYTES:
                    yield kind, texts
                    texts, size = [], 0
            if texts:
                yield kind, texts


# --- one JSON document, a page at a time ------------------------------------------------


async def write_json(request: web.Request, document: Mapping[str, Any],
                     item: Callable[[Any], Any] = lambda value: value) -> web.StreamResponse:
    """``document`` (a JSON object whose lists may be long) written a page at a time.

    Each list item goes through ``item`` (e.g. a record's view) and is written
    whole, at once, so a record changed meanwhile is never half old, half new.
    A client that takes nothing for ``SEND_TIMEOUT`` seconds is dropped, as one that left.
    """
    response = web.StreamResponse(headers={"Content-Type": "application/json; charset=utf-8"})
    try:
        await response.prepare(request)
        pending: list[str] = []
        size = 0
        for text in _json_texts(document, item):
            pending.append(text)
            size += len(text)
            if size >= PAGE_BYTES:
                await _write(response, "".join(pending).encode())
                pending, size = [], 0
        await _write(response, "".join(pending).encode())
        async with asyncio.timeout(SEND_TIMEOUT):
            await response.write_eof()
    except (ConnectionError, TimeoutError) as gone:
        reason = "it took nothing for too long" if isinstance(gone, TimeoutError) else "it left"
        log.info("%s to %s closed before its end: %s", request.path, request.remote, reason)
        if request.transport is not None:
            request.transport.abort()  # its unsent pages go nowhere
    return response


async def _write(response: web.StreamResponse, data: bytes) -> None:
    """Write ``data``, or raise TimeoutError if the client took none of it in time."""
    async with asyncio.timeout(SEND_TIMEOUT):
        await response.write(data)


def _json_texts(document: Mapping[str, Any], item: Callable[[Any], Any]) -> Iterator[str]:
    yield "{"
    for number, (name, value) in enumerate(document.items()):
        yield f"{', ' if number else ''}{json.dumps(name)}: "
        if isinstance(value, list):
            yield "["
            for index, entry in enumerate(value):
                yield (", " if index else "") + json.dumps(item(entry), default=str)
            yield "]"
        else:
            yield json.dumps(value, default=str)
    yield "}"
