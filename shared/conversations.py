"""Conversations: the SMS a user and one remote number exchanged, both ways (docs/storage.md).

Three tables, each keyed for the one way it is read:

- ``messages``: one row per SMS. Partition: the conversation (its owner, then
  the remote number), so a thread is one partition; row key: newest first
  (an inverted time, then the SID), so a page is one key-range query.
- ``conversations``: one row per thread. Partition: the owner; row key: the
  remote number. The last message and the unread count, for the list.
- ``senders``: who wrote to a remote number from a line (the Twilio number,
  or the Messaging Service that sent), and when last: one row per user.
  ``SMS_REPLY_ATTRIBUTION`` reads them to decide whose an incoming message
  is: ``last-sender``, the user who last sent to its sender from the number it
  reached (else from that number's Messaging Service); ``recent-sender``, the
  one user who did within ``SMS_REPLY_WINDOW_HOURS``, and nobody's when
  several did, so texting another user's contact never diverts its replies.
  A message nobody claims goes to ``SMS_UNASSIGNED_OWNER``; without one it is
  kept unattributed, shown to nobody, and counted in the log.

Bodies are stored because the user must read them, for
``MESSAGE_RETENTION_DAYS``: older messages are never read back (every query
stops at the cutoff) and ``purge_expired`` deletes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from shared import deliveries
from shared.delivery_status import Delivery, iso
from shared.identity import ANONYMOUS, Caller
from shared.keys import digest
from shared.logs import mask
from shared.phone import canonical_address
from shared.problems import (
    TWILIO_ERROR_DOCS,
    invalid_field,
    misconfigured,
    not_found,
    store_unavailable,
)
from shared.settings import ANONYMOUS_READER, Settings
from shared.store import RETRY_AFTER, Conflict, Row, Store, StoreUnavailable, store_for, utc
from shared.turns import Turn, Turns

logger = logging.getLogger("twilio_functions.conversations")

MESSAGES = "messages"
CONVERSATIONS = "conversations"
SENDERS = "senders"
RECEIVED = "received"
UNATTRIBUTED = "unattributed"
DEFAULT_PAGE = 50
MAX_PAGE = 100
#: Threads one list request reads (a user with more sees the newest ones).
MAX_CONVERSATIONS = 5000
MAX_ATTEMPTS = 10
_NEWEST = 10**17  # microseconds since 1970 stay below this until the year 5138
#: What Twilio writes in From and To for SMS: E.164, or a short code.
ADDRESS = re.compile(r"\+[1-9][0-9]{6,14}|[0-9]{3,8}")
_MESSAGE_CURSOR = re.compile(r"[0-9]{17}-(SM|MM)[0-9a-f]{32}")
_LIST_CURSOR = re.compile(r"[0-9]{17}-(\+[1-9][0-9]{6,14}|[0-9]{3,8})")

Direction = Literal["incoming", "outgoing"]
#: Where a client fetches media ``n`` of an incoming message (``shared.media``): the
#: Twilio URLs that message kept need the account's credentials.
MediaLink = Callable[[str, int], str]


@dataclass(frozen=True)
class Message:
    """One SMS of a conversation. ``line`` is the app's side: its number (or Messaging
    Service SID); ``remote`` the other side's number."""

    sid: str
    direction: Direction
    remote: str
    line: str
    body: str | None
    media_urls: tuple[str, ...] = ()
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def key(self) -> str:
        return f"{_time_key(self.at)}-{self.sid}"

    def view(self, media_link: MediaLink, delivery: Delivery | None = None) -> dict[str, Any]:
        """The public shape (openapi.yaml's ConversationMessage): an incoming message's
        media as links to ``media``, an outgoing one's as the client sent them."""
        incoming = self.direction == "incoming"
        error_code = delivery.error_code if delivery else None
        media = ([media_link(self.sid, n) for n in range(len(self.media_urls))] if incoming
                 else list(self.media_urls))
        return {
            "sid": self.sid, "direction": self.direction,
            "from": self.remote if incoming else self.line,
            "to": self.line if incoming else self.remote,
            "body": self.body, "media_urls": media, "at": iso(self.at),
            "status": "received" if incoming else delivery.status if delivery else None,
            "error_code": error_code,
            "more_info": TWILIO_ERROR_DOCS.format(code=error_code) if error_code else None,
        }


@dataclass(frozen=True)
class Page:
    """Which page of a list a client asks for: at most ``limit`` items from ``cursor`` on."""

    cursor: str | None = None
    limit: int = DEFAULT_PAGE


def read_page(params: dict[str, str], cursor_shape: re.Pattern[str]) -> Page:
    """``limit`` (1-100) and ``cursor`` (as a previous page's ``next`` gave it); 400 if not.

    Blank is unset, for both: Azure drops empty query parameters before the app sees them.
    """
    limit = params.get("limit") or str(DEFAULT_PAGE)
    if not (limit.isascii() and limit.isdecimal()) or not 1 <= int(limit) <= MAX_PAGE:
        raise invalid_field("limit", f"must be a whole number from 1 to {MAX_PAGE}")
    cursor = params.get("cursor") or None
    if cursor is not None and not cursor_shape.fullmatch(cursor):
        raise invalid_field("cursor", "must be the 'next' of a previous page")
    return Page(cursor, int(limit))


def read_number(text: str) -> str:
    """The remote number of a conversation, in the spelling it is kept in; 400 if it cannot
    be one."""
    if not ADDRESS.fullmatch(text):
        raise invalid_field("number", "must be a phone number in E.164 form (+14155552671) "
                            "or a short code")
    return canonical_address(text)


def message_page(params: dict[str, str]) -> Page:
    return read_page(params, _MESSAGE_CURSOR)


def list_page(params: dict[str, str]) -> Page:
    return read_page(params, _LIST_CURSOR)


# --- writing -----------------------------------------------------------------------


async def record_outgoing(settings: Settings, caller: Caller, line: str | None,
                          sent: dict[str, Any], body: str | None,
                          media_urls: list[str], now: datetime) -> None:
    """Keep a message the caller just sent, and make the caller its sender's next replies' owner.

    Never raises: the message was sent whatever happens here, so a store
    failure is logged with the SID and the client still gets its 201.
    """
    store = store_for(settings)
    if store is None or line is None:
        return
    message = Message(sent["sid"], "outgoing", sent["to"], sent.get("from") or line, body,
                      tuple(media_urls), now)
    sender = Row(line, _sender_key(message.remote, caller.owner), {"Owner": caller.owner,
                                                                    "At": now})
    try:
        await asyncio.gather(store.upsert(SENDERS, sender),
                             _keep(store, caller.owner, message, unread=0))
    except StoreUnavailable as error:
        logger.error("store=unavailable sid=%s cause=%s: the message is missing from its "
                     "conversation", message.sid, str(error).replace(" ", "_"))


async def record_incoming(store: Store, settings: Settings, message: Message,
                          service: str | None) -> str:
    """Keep an incoming message in the conversation it continues: ``attributed``,
    ``unassigned`` (to ``SMS_UNASSIGNED_OWNER``), ``unattributed`` (kept, shown to
    nobody) or ``duplicate`` (Twilio's retry)."""
    # Remote and Key find the message again from its SID alone (incoming_media).
    if not await store.insert(RECEIVED, Row(message.sid, "received", {
            "At": message.at, "Remote": message.remote, "Key": message.key})):
        return "duplicate"  # Twilio delivered the webhook again: kept once
    owner, unclaimed = await attributed_owner(store, settings, message, service)
    if owner is not None:
        await _keep(store, owner, message, unread=1)
        return "attributed"
    reader = unassigned_owner(settings)
    await _keep(store, reader or UNATTRIBUTED, message, unread=1, summary=reader is not None)
    outcome = "unassigned" if reader else "unattributed"
    logger.warning("incoming sms sid=%s from=%s %s: %s", message.sid, mask(message.remote),
                   outcome, unclaimed)
    return outcome


async def attributed_owner(store: Store, settings: Settings, message: Message,
                           service: str | None) -> tuple[str | None, str]:
    """Whose the message is by ``SMS_REPLY_ATTRIBUTION``: the owner, else None and why.

    Its senders are those who wrote to its sender from the number it reached,
    else (``last-sender``) or also (``recent-sender``) from that number's service.
    """
    lines = [line for line in (message.line, service) if line is not None]
    retained = _cutoff(settings, message.at)
    if settings.sms_reply_attribution == "last-sender":
        for line in lines:
            rows = [row for row in await _senders(store, line, message.remote)
                    if _retained(utc(row.fields["At"]), retained)]
            if rows:
                return str(max(rows, key=lambda row: utc(row.fields["At"])).fields["Owner"]), ""
        return None, "nobody wrote to this sender from this number within MESSAGE_RETENTION_DAYS"
    since = message.at - timedelta(hours=settings.sms_reply_window_hours)
    found = await asyncio.gather(*(_senders(store, line, message.remote) for line in lines))
    owners = {str(row.fields["Owner"]) for rows in found for row in rows
              if utc(row.fields["At"]) >= since and _retained(utc(row.fields["At"]), retained)}
    if len(owners) == 1:
        return owners.pop(), ""
    who = "several users" if owners else "nobody"
    return None, f"{who} wrote to this sender from this number within SMS_REPLY_WINDOW_HOURS"


async def _senders(store: Store, line: str, remote: str) -> list[Row]:
    """The ``senders`` rows of ``remote`` on ``line``, one per user: one key range."""
    return await store.rows(SENDERS, line, start=f"{remote}|", stop=f"{remote}}}")


def unassigned_owner(settings: Settings) -> str | None:
    """The owner ``SMS_UNASSIGNED_OWNER`` names, if set: who reads what nobody claims."""
    reader = settings.sms_unassigned_owner
    if reader is None:
        return None
    if reader == ANONYMOUS_READER:
        return ANONYMOUS.owner
    provider, user_id = reader.split(":", 1)
    return Caller(user_id, provider).owner


async def _keep(store: Store, owner: str, message: Message, *, unread: int,
                summary: bool = True) -> None:
    """Add the message to its thread, and move the thread's summary (if it has one) to it."""
    fields = {"Sid": message.sid, "Direction": message.direction, "Line": message.line,
              "Body": message.body, "Media": json.dumps(list(message.media_urls)),
              "At": message.at}
    inserted = store.insert(MESSAGES, Row(_thread(owner, message.remote), message.key, {
        name: value for name, value in fields.items() if value is not None}))
    await asyncio.gather(inserted, *([_summarise(store, owner, message, unread)]
                                     if summary else []))


@dataclass
class _Summary(Turn):
    """A thread's summary as this instance writes it: what waits for the next write.

    Messages of one thread that arrive while a write is under way wait
    together, and the next write carries them all: 200 concurrent sends to
    one number make two or three writes, not 200 racing on one ETag. Each
    write is a task of its own, so a request cancelled while it waits (its
    client gone) takes neither the write nor the other messages with it.
    """

    newest: Message | None = None
    unread: int = 0
    written: asyncio.Future[None] | None = None  # the next write: what waits goes with it

    def busy(self) -> bool:
        return super().busy() or self.written is not None


_summaries: Turns[_Summary] = Turns(_Summary)
_writes: set[asyncio.Task[None]] = set()  # held here: the loop keeps only weak references


async def _summarise(store: Store, owner: str, message: Message, unread: int) -> None:
    """Move the thread's summary to this message if it is the newest; count it unread."""
    summary = _summaries.at(store, _owner_key(owner), message.remote)
    if summary.newest is None or summary.newest.at <= message.at:
        summary.newest = message
    summary.unread += unread
    written = summary.written
    if written is None:
        written = summary.written = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(_write_next(store, summary, owner))
        _writes.add(task)
        task.add_done_callback(_writes.discard)
    await asyncio.shield(written)


async def _write_next(store: Store, summary: _Summary, owner: str) -> None:
    """Once the write under way ends, write what has gathered since, and tell its messages."""
    async with summary.taken():
        written, newest, unread = summary.written, summary.newest, summary.unread
        summary.written, summary.newest, summary.unread = None, None, 0
        assert written is not None and newest is not None
        try:
            await _write_summary(store, summary, owner, newest, unread)
        except BaseException as error:
            failure = error if isinstance(error, Exception) else StoreUnavailable(
                "the summary write was cancelled (the loop is closing)")
            written.set_exception(failure)
            written.exception()  # retrieved here: its requests may all be gone
            if not isinstance(error, Exception):
                raise
        else:
            written.set_result(None)


async def _write_summary(store: Store, summary: _Summary, owner: str, newest: Message,
                         unread: int) -> None:
    """One write of the summary from the row as last seen here (read again on a conflict)."""
    owner_key = _owner_key(owner)
    row, summary.row = summary.row, None  # until the store agrees again
    if row is None:
        row = await store.get(CONVERSATIONS, owner_key, newest.remote)
    for attempt in range(MAX_ATTEMPTS):
        fields = dict(row.fields) if row else {"Unread": 0}
        fields["Unread"] = int(fields.get("Unread", 0)) + unread
        if row is None or utc(fields["LastAt"]) <= newest.at:
            fields.update(LastSid=newest.sid, LastDirection=newest.direction,
                          LastBody=newest.body or "", LastAt=newest.at)
        updated = Row(owner_key, newest.remote, fields, row.etag if row else None)
        try:
            if row is None:
                if await store.insert(CONVERSATIONS, updated):
                    summary.row = updated
                    return
            else:
                await store.replace(CONVERSATIONS, updated)
                summary.row = updated
                return
        except Conflict:
            pass
        await asyncio.sleep(random.uniform(0, 0.005 * 2**attempt))  # noqa: S311
        row = await store.get(CONVERSATIONS, owner_key, newest.remote)
    raise StoreUnavailable(f"{MAX_ATTEMPTS} conflicting writes on a conversation")


# --- reading -----------------------------------------------------------------------


async def list_for(settings: Settings, caller: Caller, page: Page,
                   now: datetime) -> dict[str, Any]:
    """The caller's conversations, the latest first: number, last message, unread count."""
    store = _required(settings)
    cutoff = _cutoff(settings, now)
    try:
        rows = await store.rows(CONVERSATIONS, _owner_key(caller.owner), limit=MAX_CONVERSATIONS)
    except StoreUnavailable:
        raise store_unavailable(RETRY_AFTER) from None
    threads = sorted((f"{_time_key(utc(row.fields['LastAt']))}-{row.key}", row)
                     for row in rows if _retained(utc(row.fields["LastAt"]), cutoff))
    listed = [(key, row) for key, row in threads if page.cursor is None or key >= page.cursor]
    shown = listed[:page.limit]
    return {
        "conversations": [{
            "number": row.key, "unread": int(row.fields.get("Unread", 0)),
            "last_message": {"sid": row.fields["LastSid"],
                             "direction": row.fields["LastDirection"],
                             "body": row.fields.get("LastBody", ""),
                             "at": iso(utc(row.fields["LastAt"]))},
        } for _, row in shown],
        "next": listed[page.limit][0] if len(listed) > page.limit else None,
    }


async def thread_for(settings: Settings, caller: Caller, remote: str, page: Page,
                     now: datetime, media_link: MediaLink) -> dict[str, Any]:
    """The caller's messages with ``remote``, newest first, outgoing ones with their status.

    404 alike for a conversation of another user and none at all. Reading its
    first page marks the conversation read.
    """
    store = _required(settings)
    cutoff = _cutoff(settings, now)
    try:
        summary = await store.get(CONVERSATIONS, _owner_key(caller.owner), remote)
        if summary is None or not _retained(utc(summary.fields["LastAt"]), cutoff):
            raise not_found(f"no conversation with {mask(remote)} for this caller")
        rows = await store.rows(MESSAGES, _thread(caller.owner, remote), start=page.cursor,
                                stop=_time_key(cutoff), limit=page.limit + 1)
        messages = [_message(row, remote) for row in rows[:page.limit]]
        sent = await deliveries.find_many(store, [m.sid for m in messages
                                                  if m.direction == "outgoing"])
        if page.cursor is None and summary.fields.get("Unread"):
            await _mark_read(store, summary)
    except StoreUnavailable:
        raise store_unavailable(RETRY_AFTER) from None
    return {
        "number": remote,
        "messages": [m.view(media_link, sent.get(m.sid)) for m in messages],
        "next": rows[page.limit].key if len(rows) > page.limit else None,
    }


async def incoming_media(settings: Settings, caller: Caller, sid: str,
                         now: datetime) -> tuple[str, ...]:
    """The Twilio media URLs of an incoming message in one of the caller's threads.

    404 alike for a SID unknown, another user's and one past the retention: two point
    reads, the ``received`` row naming the thread and key, then the caller's message.
    """
    store = _required(settings)
    try:
        received = await store.get(RECEIVED, sid, "received")
        fields = received.fields if received else {}
        row = None
        if "Remote" in fields and _retained(utc(fields["At"]), _cutoff(settings, now)):
            row = await store.get(MESSAGES, _thread(caller.owner, fields["Remote"]),
                                  fields["Key"])
    except StoreUnavailable:
        raise store_unavailable(RETRY_AFTER) from None
    if row is None:
        raise not_found(f"no incoming message {sid} for this caller")
    return _message(row, fields["Remote"]).media_urls


async def _mark_read(store: Store, summary: Row) -> None:
    """Unread back to 0, unless a message arrived meanwhile (then it stays unread)."""
    summary.fields["Unread"] = 0
    with contextlib.suppress(Conflict):
        await store.replace(CONVERSATIONS, summary)


def _message(row: Row, remote: str) -> Message:
    fields = row.fields
    return Message(fields["Sid"], fields["Direction"], remote, fields["Line"],
                   fields.get("Body"), tuple(json.loads(fields.get("Media", "[]"))),
                   utc(fields["At"]))


# --- retention ---------------------------------------------------------------------


async def purge_expired(settings: Settings, now: datetime) -> int:
    """Delete what is older than ``MESSAGE_RETENTION_DAYS``: messages, threads, senders,
    received SIDs.

    Run daily by ``purge_messages``; reads stop at the cutoff anyway, so what
    waits here for deletion is never shown. Answers how many rows went.
    """
    store = _required(settings)
    cutoff = _cutoff(settings, now)
    deleted = 0
    while expired := await store.rows(MESSAGES, start=_time_key(cutoff), limit=1000):
        for row in expired:  # a message row never changes: no conflict to lose
            await store.delete(MESSAGES, row)
        deleted += len(expired)
    for table in (CONVERSATIONS, SENDERS, RECEIVED):
        moment = "LastAt" if table == CONVERSATIONS else "At"
        for row in await store.rows(table):
            if not _retained(utc(row.fields[moment]), cutoff):
                with contextlib.suppress(Conflict):  # written since: a new message, kept
                    await store.delete(table, row)
                    deleted += 1
    return deleted


def _cutoff(settings: Settings, now: datetime) -> datetime:
    return now - timedelta(days=settings.message_retention_days)


def _retained(at: datetime, cutoff: datetime) -> bool:
    """Whether ``at`` is within the retention: after the cutoff. What is exactly
    ``MESSAGE_RETENTION_DAYS`` old is past it, in every table, as the messages' key
    ranges have it (the purge deletes from the cutoff's key; reads stop before it)."""
    return at > cutoff


# --- keys --------------------------------------------------------------------------


def _owner_key(owner: str) -> str:
    """The owner as a key: the first 32 hex digits (128 bits) of the SHA-256 of the owner
    (which no two users share, ``Caller.owner``). Any owner fits (keys are at most 1 KiB
    and forbid / \\ # ?), and none holds the ``|`` the keys below join with."""
    return digest(owner)


def _thread(owner: str, remote: str) -> str:
    return f"{_owner_key(owner)}|{remote}"


def _sender_key(remote: str, owner: str) -> str:
    """A ``senders`` row key: the remote number first, so its senders are one key range."""
    return f"{remote}|{_owner_key(owner)}"


def _time_key(at: datetime) -> str:
    """Newest first: microseconds before the far future, 17 digits so text order is time order."""
    return f"{_NEWEST - int(at.timestamp() * 1_000_000):017d}"


def _required(settings: Settings) -> Store:
    store = store_for(settings)
    if store is None:
        raise misconfigured("STATE_STORAGE", "(or AzureWebJobsStorage) is required for "
                            "conversations")
    return store
