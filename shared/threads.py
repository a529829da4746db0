"""Threads: everything an owner and one remote number exchanged, SMS and calls (docs/storage.md).

Three tables, each keyed for the way it is read:

- ``messages``: one row per item. Partition ``{ownerkey}|{remote}`` (the thread), row
  key ``{timekey(at)}-{sid}``: newest first, so a page is one key range.
- ``conversations``: per owner (partition ``ownerkey``), the thread's summary
  ``thread|{remote}`` and its activity row ``activity|{timekey(LastAt)}|{remote}``, a
  copy of the summary kept where the owner's threads sort by last activity: the list
  is one key range of ``limit + 1`` rows whatever the number of threads. Summary and
  activity change together in one entity-group transaction, guarded by the summary's
  ETag.
- ``items``: the locator of a call or recording (partition its ``CA``/``RE`` SID), so
  that a callback that knows only the SID finds the item.

Summary writes of one thread take turns in an instance (``shared.turns``): items that
arrive while one is under way wait together and the next write carries them all, so
200 concurrent sends to one number make a few writes, not 200 racing on one ETag.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from shared import contacts
from shared.keys import digest
from shared.store import MAX_TRANSACTION, Conflict, Op, Row, Store, StoreUnavailable, utc
from shared.turns import Turn, Turns

MESSAGES = "messages"
CONVERSATIONS = "conversations"
ITEMS = "items"
RECEIVED = "received"
THREAD = "thread|"
ACTIVITY = "activity|"
MAX_ATTEMPTS = 10
_NEWEST = 10**17  # microseconds since 1970 stay below this until the year 5138
_LOCATED = ("CA", "RE")  # SIDs a callback names alone: their items have a locator

Kind = Literal["sms", "call", "voicemail"]
Direction = Literal["incoming", "outgoing"]
#: Item fields ``update`` may change, and the columns they are kept in.
_CHANGEABLE = {"status": "Status", "duration": "Duration", "transcription": "Transcription",
               "transcription_status": "TranscriptionStatus"}


@dataclass(frozen=True)
class Item:
    """One thing on a thread: an SMS, a call, a voicemail. ``line`` is the app's side
    (its number or Messaging Service SID), ``remote`` the contact's number."""

    sid: str                    # SM/MM, CA (call), RE (voicemail's recording)
    kind: Kind
    direction: Direction
    remote: str
    line: str
    at: datetime
    status: str | None = None   # call: Twilio's CallStatus, or "missed"
    body: str | None = None
    media_urls: tuple[str, ...] = ()
    duration: int | None = None  # seconds (call, voicemail)
    call_sid: str | None = None  # voicemail: the call it was left on
    transcription: str | None = None
    transcription_status: str | None = None  # "completed" | "failed" | None

    @property
    def key(self) -> str:
        return item_key(self.at, self.sid)


@dataclass(frozen=True)
class Thread:
    """A thread's summary, as the list and the thread's page show it."""

    remote: str
    unread: int
    blocked: bool
    line: str
    last_kind: Kind
    last_sid: str
    last_direction: Direction
    last_status: str | None
    last_body: str | None
    last_at: datetime


# --- keys ------------------------------------------------------------------------------


def owner_key(owner: str) -> str:
    """The owner as a key: ``shared.keys.digest`` (holds no ``|``)."""
    return digest(owner)


def thread_partition(owner: str, remote: str) -> str:
    return f"{owner_key(owner)}|{remote}"


def time_key(at: datetime) -> str:
    """Newest first: microseconds before the far future, 17 digits so text order is time order."""
    return f"{_NEWEST - int(at.timestamp() * 1_000_000):017d}"


def item_key(at: datetime, sid: str) -> str:
    return f"{time_key(at)}-{sid}"


def activity_key(at: datetime, remote: str) -> str:
    return f"{ACTIVITY}{time_key(at)}|{remote}"


# --- writing items -----------------------------------------------------------------------


async def keep(store: Store, owner: str, item: Item, *, unread: bool,
               listed: bool = True) -> bool:
    """Insert the item (and its locator for CA/RE sids) and move the thread's summary and
    activity to it if newest; +1 Unread if ``unread``. False if an item with that SID was
    already kept (a webhook retried): nothing else changes.

    ``listed=False`` keeps the item without a summary (a message nobody may read)."""
    partition = thread_partition(owner, item.remote)
    if item.sid[:2] in _LOCATED:
        located = await store.insert(ITEMS, Row(item.sid, "item", {
            "Thread": partition, "Key": item.key, "At": item.at}))
        if not located:
            found = await store.get(ITEMS, item.sid, "item")
            if found is None or found.fields["Thread"] != partition:
                return False
            if await store.get(MESSAGES, partition, found.fields["Key"]) is not None:
                return False
            item = replace(item, at=utc(found.fields["At"]))  # a write cut short: finish it
    if not await store.insert(MESSAGES, Row(partition, item.key, _item_fields(item, unread))):
        return False
    if listed:
        await _summarise(store, owner, item, int(unread))
    return True


async def update(store: Store, sid: str, changes: Mapping[str, Any]) -> bool:
    """Merge ``changes`` (Item field names: status, duration, transcription,
    transcription_status) into the item found by its locator; False if none. Also refreshes
    the thread's summary when that item is its last one (LastStatus)."""
    unknown = set(changes) - set(_CHANGEABLE)
    if unknown:
        raise ValueError(f"items cannot change {sorted(unknown)}")
    locator = await store.get(ITEMS, sid, "item")
    if locator is None:
        return False
    partition, key = locator.fields["Thread"], locator.fields["Key"]
    for _ in range(MAX_ATTEMPTS):
        row = await store.get(MESSAGES, partition, key)
        if row is None:
            return False  # the thread was deleted
        for name, value in changes.items():
            if value is None:
                row.fields.pop(_CHANGEABLE[name], None)
            else:
                row.fields[_CHANGEABLE[name]] = value
        try:
            await store.replace(MESSAGES, row)
            break
        except Conflict:
            continue
    else:
        raise StoreUnavailable(f"{MAX_ATTEMPTS} conflicting writes on an item")
    if "status" in changes:
        owner, remote = partition.split("|", 1)

        async def last_status(summary: Row | None) -> dict[str, Any] | None:
            if summary is None or summary.fields.get("LastSid") != sid:
                return None
            return _set(summary.fields, LastStatus=changes["status"])
        await _rewrite(store, owner, remote, last_status)
    return True


async def find(store: Store, owner: str, sid: str) -> Item | None:
    """The owner's item with this SID (via the locator; an incoming SMS via ``received``),
    None if unknown or another owner's. Callers apply the retention (``Item.at``)."""
    where = await store.get(ITEMS, sid, "item") if sid[:2] in _LOCATED else None
    if where is not None:
        partition, key = where.fields["Thread"], where.fields["Key"]
    elif (received := await store.get(RECEIVED, sid, "received")) is not None:
        partition = thread_partition(owner, received.fields["Remote"])
        key = received.fields["Key"]
    else:
        return None
    prefix, _, remote = partition.partition("|")
    if prefix != owner_key(owner):
        return None
    row = await store.get(MESSAGES, partition, key)
    return None if row is None else item_of(row, remote)


def _item_fields(item: Item, unread: bool) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "Kind": item.kind, "Sid": item.sid, "Direction": item.direction, "Line": item.line,
        "At": item.at, "Status": item.status, "Body": item.body, "Duration": item.duration,
        "CallSid": item.call_sid, "Transcription": item.transcription,
        "TranscriptionStatus": item.transcription_status, "Unread": unread or None}
    if item.kind == "sms":
        fields["Media"] = json.dumps(list(item.media_urls))
    return {name: value for name, value in fields.items() if value is not None}


def item_of(row: Row, remote: str) -> Item:
    """An item as its ``messages`` row keeps it (a row without ``Kind`` is an SMS)."""
    fields = row.fields
    duration = fields.get("Duration")
    return Item(fields["Sid"], fields.get("Kind", "sms"), fields["Direction"], remote,
                fields["Line"], utc(fields["At"]), status=fields.get("Status"),
                body=fields.get("Body"), media_urls=tuple(json.loads(fields.get("Media", "[]"))),
                duration=None if duration is None else int(duration),
                call_sid=fields.get("CallSid"), transcription=fields.get("Transcription"),
                transcription_status=fields.get("TranscriptionStatus"))


# --- the summary ---------------------------------------------------------------------------


@dataclass
class _Summary(Turn):
    """A thread's summary as this instance writes it: what waits for the next write.

    Each write is a task of its own, so a request cancelled while it waits (its client
    gone) takes neither the write nor the other items with it.
    """

    newest: Item | None = None
    unread: int = 0
    written: asyncio.Future[None] | None = None  # the next write: what waits goes with it

    def busy(self) -> bool:
        return super().busy() or self.written is not None


_summaries: Turns[_Summary] = Turns(_Summary)
_writes: set[asyncio.Task[None]] = set()  # held here: the loop keeps only weak references


async def _summarise(store: Store, owner: str, item: Item, unread: int) -> None:
    """Move the thread's summary to this item if it is the newest; count it unread."""
    summary = _summaries.at(store, owner_key(owner), item.remote)
    if summary.newest is None or summary.newest.at <= item.at:
        summary.newest = item
    summary.unread += unread
    written = summary.written
    if written is None:
        written = summary.written = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(_write_next(store, summary, owner))
        _writes.add(task)
        task.add_done_callback(_writes.discard)
    await asyncio.shield(written)


async def _write_next(store: Store, summary: _Summary, owner: str) -> None:
    """Once the write under way ends, write what has gathered since, and tell its items."""
    async with summary.taken():
        written, newest, unread = summary.written, summary.newest, summary.unread
        summary.written, summary.newest, summary.unread = None, None, 0
        assert written is not None and newest is not None
        try:
            await _rewrite(store, owner_key(owner), newest.remote,
                           _moved_to(store, owner, newest, unread), turn=summary)
        except BaseException as error:
            failure = error if isinstance(error, Exception) else StoreUnavailable(
                "the summary write was cancelled (the loop is closing)")
            written.set_exception(failure)
            written.exception()  # retrieved here: its requests may all be gone
            if not isinstance(error, Exception):
                raise
        else:
            written.set_result(None)


def _moved_to(store: Store, owner: str, newest: Item,
              unread: int) -> Callable[[Row | None], Awaitable[dict[str, Any] | None]]:
    async def change(row: Row | None) -> dict[str, Any]:
        if row is None:
            blocked = await contacts.is_blocked(store, owner, newest.remote)
            fields: dict[str, Any] = {"Unread": 0, "Blocked": blocked}
        else:
            fields = dict(row.fields)
        fields["Unread"] = int(fields.get("Unread", 0)) + unread
        if row is None or utc(fields["LastAt"]) <= newest.at:
            fields.update(LastKind=newest.kind, LastSid=newest.sid,
                          LastDirection=newest.direction, LastStatus=newest.status or "",
                          LastBody=newest.body or "", LastAt=newest.at, Line=newest.line)
        return fields
    return change


def _set(fields: Mapping[str, Any], **changes: Any) -> dict[str, Any]:
    return {**fields, **changes}


#: What ``_rewrite``'s change answers to delete the summary and its activity row.
DELETE: dict[str, Any] = {}
Change = Callable[[Row | None], Awaitable[dict[str, Any] | None]]


async def _rewrite(store: Store, owner: str, remote: str, change: Change, *,
                   turn: _Summary | None = None) -> Row | None:
    """Write the thread's summary and activity row as ``change`` makes its fields from
    the row (None: leave it; ``DELETE``: delete both), in one transaction over the
    summary's ETag, read again on a conflict. Takes this instance's turn at the row
    unless the caller holds it (``turn``). Answers the summary as written."""
    if turn is None:
        turn = _summaries.at(store, owner, remote)
        async with turn.taken():
            return await _rewrite(store, owner, remote, change, turn=turn)
    row, turn.row = turn.row, None  # until the store agrees again
    if row is None:
        row = await store.get(CONVERSATIONS, owner, f"{THREAD}{remote}")
    for attempt in range(MAX_ATTEMPTS):
        fields = await change(row)
        if fields is None:
            turn.row = row
            return row
        try:
            written = await _transact_summary(store, owner, remote, row, fields)
        except Conflict:
            await asyncio.sleep(random.uniform(0, 0.005 * 2**attempt))  # noqa: S311
            row = await store.get(CONVERSATIONS, owner, f"{THREAD}{remote}")
            continue
        turn.row = written
        return written
    raise StoreUnavailable(f"{MAX_ATTEMPTS} conflicting writes on a conversation")


async def _transact_summary(store: Store, owner: str, remote: str, row: Row | None,
                            fields: dict[str, Any]) -> Row | None:
    old = Row(owner, row.fields["Activity"]) if row and row.fields.get("Activity") else None
    ops: list[Op] = []
    if fields is DELETE:
        if row is None:
            return None
        ops = [("delete", row), *([("delete", old)] if old else [])]
        await store.transact(CONVERSATIONS, owner, ops)
        return None
    activity = activity_key(utc(fields["LastAt"]), remote)
    fields = _set(fields, Activity=activity)
    summary = Row(owner, f"{THREAD}{remote}", fields, row.etag if row else None)
    copy = Row(owner, activity, {name: value for name, value in fields.items()
                                 if name != "Activity"} | {"Number": remote})
    ops = [("replace" if row else "insert", summary), ("upsert", copy)]
    if old is not None and old.key != activity:
        ops.append(("delete", old))
    await store.transact(CONVERSATIONS, owner, ops)
    return summary


def thread_of(row: Row, remote: str) -> Thread:
    """A summary (or activity) row as a ``Thread``."""
    fields = row.fields
    return Thread(remote, int(fields.get("Unread", 0)), bool(fields.get("Blocked", False)),
                  str(fields.get("Line", "")), fields.get("LastKind", "sms"),
                  fields["LastSid"], fields["LastDirection"], fields.get("LastStatus") or None,
                  fields.get("LastBody") or None, utc(fields["LastAt"]))


# --- reading -----------------------------------------------------------------------------


async def summary(store: Store, owner: str, remote: str) -> Thread | None:
    """The thread's summary: one point read."""
    row = await store.get(CONVERSATIONS, owner_key(owner), f"{THREAD}{remote}")
    return None if row is None else thread_of(row, remote)


async def listed(store: Store, owner: str, start: str | None, stop: datetime,
                 limit: int) -> list[tuple[str, Thread]]:
    """Up to ``limit`` threads by last activity, newest first, from the activity key
    ``start`` on and no older than ``stop``: one key range. Each with its activity key."""
    rows = await store.rows(CONVERSATIONS, owner_key(owner), start=start or ACTIVITY,
                            stop=f"{ACTIVITY}{time_key(stop)}", limit=limit)
    return [(row.key, thread_of(row, str(row.fields["Number"]))) for row in rows]


async def items(store: Store, owner: str, remote: str, start: str | None, stop: datetime,
                limit: int) -> list[Item]:
    """Up to ``limit`` items of the thread, newest first, from the key ``start`` on and no
    older than ``stop``: one key range."""
    rows = await store.rows(MESSAGES, thread_partition(owner, remote), start=start,
                            stop=time_key(stop), limit=limit)
    return [item_of(row, remote) for row in rows]


# --- what an owner does to a thread ------------------------------------------------------------


async def mark_read(store: Store, owner: str, remote: str, up_to: str,
                    stop: datetime) -> int | None:
    """Read up to item ``up_to``: Unread becomes the number of unread-able items newer
    than it that the summary has counted (those newer than its last item are still on
    their way there and count once they land). None if the thread or the item is not
    there (no newer than ``stop``)."""
    partition = thread_partition(owner, remote)
    found: dict[str, int] = {}

    async def recount(row: Row | None) -> dict[str, Any] | None:
        found.clear()
        if row is None:
            return None
        last = item_key(utc(row.fields["LastAt"]), row.fields["LastSid"])
        newer, start = 0, None
        while True:  # newest first until the item: what is newer is what stays unread
            rows = await store.rows(MESSAGES, partition, start=start, stop=time_key(stop),
                                    limit=MAX_TRANSACTION)
            for each in rows:
                if each.fields["Sid"] == up_to:
                    found["unread"] = newer
                    return _set(row.fields, Unread=newer)
                if each.key >= last and each.fields.get("Unread"):
                    newer += 1
            if len(rows) < MAX_TRANSACTION:
                return None
            start = rows[-1].key + " "  # keys are all one length: the next one on

    written = await _rewrite(store, owner_key(owner), remote, recount)
    return found.get("unread") if written is not None else None


async def block(store: Store, owner: str, remote: str, blocked: bool, at: datetime) -> None:
    """Block or unblock ``remote`` for ``owner`` (``contacts``), and mark its thread, if
    there is one (summary and activity in one transaction)."""
    await contacts.set_blocked(store, owner, remote, blocked, at)

    async def marked(row: Row | None) -> dict[str, Any] | None:
        if row is None or bool(row.fields.get("Blocked")) == blocked:
            return None
        return _set(row.fields, Blocked=blocked)
    await _rewrite(store, owner_key(owner), remote, marked)


async def delete(store: Store, owner: str, remote: str) -> bool:
    """Delete the thread: its summary and activity row, then its items (by transactions of
    ``MAX_TRANSACTION``) and their locators. False if there was nothing to delete.

    Items go after the summary, so a thread whose deletion was cut short (a store
    failure) is deleted by the next try: its summary may be gone, its items are not."""
    existed: list[bool] = []

    async def gone(row: Row | None) -> dict[str, Any] | None:
        existed[:] = [row is not None]
        return DELETE if row is not None else None
    await _rewrite(store, owner_key(owner), remote, gone)
    partition = thread_partition(owner, remote)
    rows = await store.rows(MESSAGES, partition)
    for at in range(0, len(rows), MAX_TRANSACTION):
        batch = rows[at:at + MAX_TRANSACTION]
        try:
            await store.transact(MESSAGES, partition, [("delete", Row(partition, row.key))
                                                       for row in batch])
        except Conflict:  # one went meanwhile (the purge): the others one by one
            for row in batch:
                with contextlib.suppress(Conflict):
                    await store.transact(MESSAGES, partition,
                                         [("delete", Row(partition, row.key))])
    for row in rows:
        if row.fields["Sid"][:2] in _LOCATED:
            with contextlib.suppress(Conflict):
                await store.transact(ITEMS, row.fields["Sid"],
                                     [("delete", Row(row.fields["Sid"], "item"))])
    return bool(existed and existed[0]) or bool(rows)


async def purge(store: Store, cutoff: datetime) -> int:
    """Delete what is at or past ``cutoff``: items, their locators, and summaries (with
    their activity rows) whose last item is. Answers how many rows went."""
    deleted = 0
    while expired := await store.rows(MESSAGES, start=time_key(cutoff), limit=1000):
        for row in expired:
            with contextlib.suppress(Conflict):
                await store.transact(MESSAGES, row.partition,
                                     [("delete", Row(row.partition, row.key))])
            deleted += 1
    for row in await store.rows(ITEMS):
        if utc(row.fields["At"]) <= cutoff:
            with contextlib.suppress(Conflict):
                await store.delete(ITEMS, row)
                deleted += 1
    for row in await store.rows(CONVERSATIONS, start=THREAD, stop="thread}"):
        if utc(row.fields["LastAt"]) <= cutoff:
            remote = row.key.removeprefix(THREAD)

            async def expired_summary(now: Row | None) -> dict[str, Any] | None:
                if now is None or utc(now.fields["LastAt"]) > cutoff:
                    return None  # written since: a new item, kept
                return DELETE
            written = await _rewrite(store, row.partition, remote, expired_summary)
            deleted += 2 if written is None else 0
    return deleted

