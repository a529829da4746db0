"""The console's live feed as a server must hold it: pages of history, a cap, quiet goodbyes.

Most tests run the sandbox in this process; the memory test runs it as its own
process (``python -m twilio_sandbox``) and reads that process's memory from
``/proc``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import struct
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from test_sandbox_console import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    TEXTER,
    App,
    create_message,
    read_events,
    run,
)

from devhost.ready import end, start_and_wait
from twilio_sandbox import READY_PREFIX, VALID_FROM, TwilioSandbox, feed
from twilio_sandbox.events import Subscription
from twilio_sandbox.feed import PAGE_BYTES, RETRY_AFTER, Feed

ROOT = Path(__file__).resolve().parents[1]
#: Pages that subscribe and never read, in the memory test.
STALLED = 40
#: Messages in the sandbox's history then, each with the longest body Twilio takes.
HISTORY = 1000
LONG_BODY = "x" * 1600
#: What those stalled pages may add to the sandbox's peak memory.
GROWTH_LIMIT_MIB = 50
CLOSED = "console feed to 127.0.0.1 closed"


# --- the history, a page at a time ------------------------------------------------------


def test_the_history_comes_a_page_at_a_time_then_every_change() -> None:
    async def scenario(sandbox: TwilioSandbox, app: App, session: aiohttp.ClientSession) -> None:
        created = [await create_message(session, body=LONG_BODY) for _ in range(40)]
        async with session.get("/_sandbox/events") as stream:
            events = read_events(stream)
            kind, head = await anext(events)
            assert kind == "history"
            assert head["data"]["counts"] == {"webhook": 0, "message": 40, "call": 0}
            pages = []
            while (kind := (event := await anext(events))[0]) == "history-page":
                pages.append(event[1]["data"])
            assert kind == "history-end"
            assert len(pages) > 1  # 40 long messages are more than one page
            assert all(page["kind"] == "message" for page in pages)
            shown = [record["sid"] for page in pages for record in page["records"]]
            assert shown == [message["sid"] for message in created]
            assert all(len(json.dumps(page)) < 2 * PAGE_BYTES for page in pages)
            later = await create_message(session)
            kind, event = await anext(events)
            assert (kind, event["data"]["sid"]) == ("message", later["sid"])

    run(scenario)


class Recorder:
    """A stream that keeps what it was sent and lets the sandbox move on between pages."""

    def __init__(self, between_pages: Any) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.between_pages = between_pages

    async def send(self, data: str, event: str) -> None:
        self.sent.append((event, json.loads(data)["data"]))
        if event == "history-page":
            self.between_pages(len(self.sent))
            await asyncio.sleep(0)  # the changes are published


def test_a_change_the_history_already_shows_is_not_sent_again_older() -> None:
    """A record changed while the history is being sent: the page that shows it is
    newer than the event queued before it, so that event must not undo the page."""

    async def scenario(sandbox: TwilioSandbox, app: App, session: aiohttp.ClientSession) -> None:
        first, *_, last = [await create_message(session, body=LONG_BODY) for _ in range(30)]
        records = {record["sid"]: record for record in sandbox.messages}

        def between_pages(sent: int) -> None:
            if sent == 2:  # after the first page: the last message moves twice
                records[last["sid"]]["status"] = "sent"
                records[first["sid"]]["status"] = "failed"  # already shown: news

        with sandbox.events.subscribe() as subscription:
            feed = Feed(sandbox, subscription)
            stream = Recorder(between_pages)
            await feed.send_history(stream)  # type: ignore[arg-type]
            records[last["sid"]]["status"] = "delivered"
            await asyncio.sleep(0)
            forwarded = [event for event in drain(subscription) if not feed.is_stale(event)]

        shown = {record["sid"]: record["status"] for event, data in stream.sent
                 if event == "history-page" for record in data["records"]}
        assert shown[last["sid"]] == "sent"  # its page came after the change
        news = [(json.loads(e.data)["data"]["sid"], json.loads(e.data)["data"]["status"])
                for e in forwarded]
        assert news == [(first["sid"], "failed"), (last["sid"], "delivered")]

    run(scenario)


def drain(subscription: Subscription) -> Iterator[Any]:
    while not subscription.queue.empty():
        yield subscription.queue.get_nowait()


# --- the cap ------------------------------------------------------------------------------


def test_past_the_cap_a_page_is_told_to_come_back_later() -> None:
    async def scenario(sandbox: TwilioSandbox, app: App, session: aiohttp.ClientSession) -> None:
        sandbox.events.max_subscribers = 2
        async with aiohttp.ClientSession(sandbox.base_url) as pages:
            first = await pages.get("/_sandbox/events")
            second = await pages.get("/_sandbox/events")
            assert (first.status, second.status) == (200, 200)
            async with pages.get("/_sandbox/events") as refused:
                assert (refused.status, refused.content_type) == (503,
                                                                  "application/problem+json")
                assert refused.headers["Retry-After"] == str(RETRY_AFTER)
                assert "2 live pages at most" in (await refused.json())["detail"]
            first.close()
            await create_message(session)  # the closed page's stream notices it is gone
            async with asyncio.timeout(10):
                while sandbox.events.subscribers == 2:  # noqa: ASYNC110 - no event to await
                    await asyncio.sleep(0.01)
            async with pages.get("/_sandbox/events") as again:
                assert again.status == 200
            second.close()

    run(scenario)


def test_a_closed_page_ends_its_stream_with_one_info_line(
        caplog: pytest.LogCaptureFixture) -> None:
    async def scenario(sandbox: TwilioSandbox, app: App, session: aiohttp.ClientSession) -> None:
        async with aiohttp.ClientSession(sandbox.base_url) as page:
            stream = await page.get("/_sandbox/events")
            await stream.content.readline()
            assert sandbox.events.subscribers == 1
            stream.close()  # the tab goes away
        await create_message(session)  # the next event finds the connection gone
        async with asyncio.timeout(10):
            while sandbox.events.subscribers:  # noqa: ASYNC110 - nothing to await on
                await asyncio.sleep(0.01)

    with caplog.at_level(logging.DEBUG):
        run(scenario)
    closed = [r for r in caplog.records if r.name == "twilio_sandbox.feed"]
    assert [(r.levelname, r.getMessage()) for r in closed] == [
        ("INFO", "console feed to 127.0.0.1 closed: it left")]
    assert [r for r in caplog.records if r.exc_info or r.levelno >= logging.WARNING] == []


# --- as its own process: pages that never read ---------------------------------------------


def test_pages_that_never_read_hold_little_memory_and_the_next_is_refused(
        tmp_path: Path) -> None:
    log_path = tmp_path / "sandbox.log"
    with log_path.open("w") as log:
        started = start_and_wait(
            [sys.executable, "-m", "twilio_sandbox", "--account-sid", ACCOUNT_SID,
             "--auth-token", AUTH_TOKEN, "--port", "0", "--history", str(HISTORY),
             "--max-subscribers", str(STALLED), "--no-fetch-twiml", "--no-status-callbacks"],
            env={**os.environ, "PYTHONUNBUFFERED": "1"}, cwd=str(ROOT), stderr=log,
            prefixes=(READY_PREFIX,), wait_for=READY_PREFIX, timeout=30)
    process = started.process
    try:
        url = started.urls[READY_PREFIX]
        asyncio.run(fill_history(url))
        asyncio.run(read_whole_history(url))  # what one reading page costs, at its peak
        wait_for_lines(log_path, CLOSED, 1)  # its place is free again
        before = memory_kib(process.pid)
        stalled = [subscribe_without_reading(url) for _ in range(STALLED)]
        refused = http_head(url, "/_sandbox/events")
        index = http_head(url, "/")
        wait_until_waiting_on_clients(url, STALLED)  # each stream ran as far as it can
        after = memory_kib(process.pid)
        grown = {name: (after[name] - before[name]) / 1024 for name in after}
        print(f"\n{STALLED} pages that never read, {HISTORY} messages of history: peak memory "
              f"+{grown['VmHWM']:.1f} MiB, resident +{grown['VmRSS']:.1f} MiB")
        assert refused.startswith(b"HTTP/1.1 503"), refused[:200]
        assert b"Retry-After: 5" in refused and b"application/problem+json" in refused
        assert index.startswith(b"HTTP/1.1 200")
        assert grown["VmHWM"] < GROWTH_LIMIT_MIB
        for page in stalled:
            page.close()
        asyncio.run(fill_history(url, count=1))  # an event for any stream still waiting
        wait_for_lines(log_path, CLOSED, 1 + STALLED)
    finally:
        end(process)
    text = log_path.read_text()
    assert "Traceback" not in text and " ERROR " not in text, text[-3000:]


async def fill_history(url: str, count: int = HISTORY) -> None:
    auth = {"Authorization": aiohttp.encode_basic_auth(ACCOUNT_SID, AUTH_TOKEN)}
    form = {"To": TEXTER, "From": VALID_FROM, "Body": LONG_BODY}
    path = f"{url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=8)) as session:

        async def one() -> None:
            async with session.post(path, data=form, headers=auth) as answer:
                assert answer.status == 201

        await asyncio.gather(*(one() for _ in range(count)))


async def read_whole_history(url: str) -> None:
    async with aiohttp.ClientSession() as session, session.get(
            f"{url}/_sandbox/events") as stream:
        async for kind, _ in read_events(stream, within=60):
            if kind == "history-end":
                return


def subscribe_without_reading(url: str) -> socket.socket:
    """A page that asks for the feed, reads the answer's head, and nothing more."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    page = socket.socket()
    page.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the kernel takes little
    page.connect((host, int(port)))
    page.sendall(f"GET /_sandbox/events HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += page.recv(1024)
    assert head.startswith(b"HTTP/1.1 200"), head
    return page


def http_head(url: str, path: str) -> bytes:
    """The start of the answer to a GET (its head, and maybe some body)."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as client:
        client.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                       "Connection: close\r\n\r\n".encode())
        answer = b""
        while b"\r\n\r\n" not in answer and (chunk := client.recv(4096)):
            answer += chunk
        return answer


def wait_until_waiting_on_clients(url: str, count: int, timeout: float = 30) -> None:
    """Until ``count`` streams wait for their page to take what they wrote (the feed's
    own count, in /_sandbox/state): each holds all it will hold."""
    deadline = time.monotonic() + timeout
    while True:
        with urllib.request.urlopen(f"{url}/_sandbox/state", timeout=30) as answer:
            waiting = json.load(answer)["feed"]["waiting_on_client"]
        if waiting >= count:
            return
        assert time.monotonic() < deadline, f"{waiting} of {count} streams stalled"
        time.sleep(0.05)


def memory_kib(pid: int) -> dict[str, int]:
    """The process's resident memory now (VmRSS) and at its peak so far (VmHWM), in KiB."""
    fields = dict(line.split(":", 1) for line in
                  Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {name: int(fields[name].split()[0]) for name in ("VmRSS", "VmHWM")}


def wait_for_lines(path: Path, text: str, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while path.read_text().count(text) < count:
        assert time.monotonic() < deadline, f"fewer than {count} lines with {text!r}"
        time.sleep(0.05)


async def get_without_reading(base_url: str, path: str) -> socket.socket:
    """A GET on a socket whose kernel takes little, read no further than its status."""
    host, port = base_url.removeprefix("http://").rsplit(":", 1)
    loop = asyncio.get_running_loop()
    page = socket.socket()
    page.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    page.setblocking(False)
    await loop.sock_connect(page, (host, int(port)))
    await loop.sock_sendall(page, f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    assert (await loop.sock_recv(page, 12)) == b"HTTP/1.1 200"
    return page


async def logged(caplog: pytest.LogCaptureFixture, said: tuple[str, str]) -> None:
    """Until a log line (level, message) is ``said``."""
    async with asyncio.timeout(10):
        while said not in [(r.levelname, r.getMessage()) for r in caplog.records]:  # noqa: ASYNC110
            await asyncio.sleep(0.01)


def test_a_client_that_leaves_during_the_history_document_is_let_go_quietly(
        caplog: pytest.LogCaptureFixture) -> None:
    said = ("INFO", "/_sandbox/history to 127.0.0.1 closed before its end: it left")

    async def scenario(sandbox: TwilioSandbox, app: App, session: aiohttp.ClientSession) -> None:
        for _ in range(HISTORY):  # megabytes: more than the kernel holds for a client
            await create_message(session, body=LONG_BODY)
        with await get_without_reading(sandbox.base_url, "/_sandbox/history") as page:
            page.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # closed at once (a reset), most of the document unread
        await logged(caplog, said)

    with caplog.at_level(logging.DEBUG):
        run(scenario)
    assert [r for r in caplog.records if r.exc_info or r.levelno >= logging.WARNING] == []


@pytest.mark.parametrize("path", ["/_sandbox/history", "/_sandbox/state"])
def test_a_client_that_stops_reading_a_document_is_dropped_after_the_send_timeout(
        path: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feed, "SEND_TIMEOUT", 0.3)
    said = ("INFO", f"{path} to 127.0.0.1 closed before its end: it took nothing for too long")

    async def scenario(sandbox: TwilioSandbox, app: App, session: aiohttp.ClientSession) -> None:
        for _ in range(HISTORY):  # megabytes: more than the kernel holds for a client
            await create_message(session, body=LONG_BODY)
        with await get_without_reading(sandbox.base_url, path):
            await logged(caplog, said)  # open, reading nothing more: the sandbox gives up

    with caplog.at_level(logging.DEBUG):
        run(scenario)
    assert [r for r in caplog.records if r.exc_info or r.levelno >= logging.WARNING] == []
