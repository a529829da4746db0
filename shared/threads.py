"""Threads: everything an owner and one remote number exchanged, SMS and calls (docs/storage.md).

Two tables, each keyed for the way it is read:

- ``conversations``: everything of one owner in one partition (``ownerkey``), so that
  what a send leaves there is ONE entity-group transaction:
  - ``item|{remote}|{timekey(at)}-{sid}``: one row per item, newest first within the
    thread, so a thread's page is one key range;
  - ``thread|{remote}``: the thread's summary, and ``activity|{timekey(LastAt)}|{remote}``
    its copy kept where the owner's threads sort by last activity: the list is one key
    range of ``limit + 1`` rows whatever the number of threads;
  - ``delivery|{sid}``: the delivery status of a message or call the owner sent
    (``shared.deliveries``), written with its item.
  Summary and activity change together, guarded by the summary's ETag; the items (and
  deliveries) a send carries go in the same transaction.
- ``items``: the locator of a call or recording (partition its ``CA``/``RE`` SID), so
  that a callback that knows only the SID finds the item.

Summary writes of one thread take turns in an instance (``shared.turns``): items that
arrive while one is under way wait together and the next write carries them all (the
sends' rows included, ``MAX_TRANSACTION`` at most per transaction), so 200 concurrent
sends to one number make a few writes, not 200 racing on one ETag.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from shared import contacts
from shared.keys import digest
from shared.store import MAX_TRANSACTION, Conflict, Op, Row, Store, StoreUnavailable, utc
from shared.turns import Turn, Turns

CONVERSATIONS = "conversations"
ITEMS = "items"
RECEIVED = "received"
THREAD = "thread|"
ACTIVITY = "activity|"
ITEM = "item|"
DELIVERY = "delivery|"
#: Set on an item row by the transaction that counted it in its thread's summary.
SUMMARISED = "Summarised"
#: The summary's newest item read (its row key), by ``mark_read``.
READ_UP_TO = "ReadUpTo"
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
    """The thread's name in locators: ``{ownerkey}|{remote}``."""
    return f"{owner_key(owner)}|{remote}"


def item_row_key(remote: str, key: str) -> str:
    """An item's row key in its owner's partition, from its key (``Item.key``)."""
    return f"{ITEM}{remote}|{key}"


def _located(thread: str, key: str) -> tuple[str, str, str]:
    """A locator's thread and key as (partition, row key, remote)."""
    partition, _, remote = thread.partition("|")
    return partition, item_row_key(remote, key), remote


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

    ``listed=False`` keeps the item without a summary (a message nobody may read).

    The summary's transaction marks the item ``Summarised`` (over the item's ETag), so a
    retried webhook whose first try kept the item but not its summary (a store failure)
    finishes the summary, counting the item unread once; and a summary is never written
    for an item deleted meanwhile (the thread's deletion won: no ghost summary)."""
    partition = thread_partition(owner, item.remote)
    items_partition = owner_key(owner)
    if item.sid[:2] in _LOCATED:
        located = await store.insert(ITEMS, Row(item.sid, "item", {
            "Thread": partition, "Key": item.key, "At": item.at}))
        if not located:
            found = await store.get(ITEMS, item.sid, "item")
            if found is None or found.fields["Thread"] != partition:
                return False
            item = replace(item, at=utc(found.fields["At"]))  # a write cut short: finish it
    row = _item_row(owner, item, unread)
    if not await store.insert(CONVERSATIONS, row):
        kept = await store.get(CONVERSATIONS, items_partition, row.key)
        if kept is None or not listed or kept.fields.get(SUMMARISED):
            return False
        row = kept  # kept, but its summary was not written: write it now
    if listed:
        await _summarise(store, owner, item, 0, mark=row)
    return True


async def keep_sent(store: Store, owner: str, item: Item, carried: Sequence[Row]) -> None:
    """Keep an item the owner just sent (a fresh SID: no webhook repeats it) with
    ``carried``, rows of the owner's partition that stand or fall with it (its delivery):
    the item and those rows ride in the thread's next summary write, ONE transaction, which
    this waits for. A call's locator is written at the same time, apart.

    A send whose rows already exist (a retried ``voice`` webhook, a transaction whose answer
    was lost) is not written twice: ``carried[0]`` names it."""
    rows = [_item_row(owner, item, False), *carried]
    if any(row.partition != owner_key(owner) for row in rows):
        raise ValueError("a send's rows are all in its owner's partition")
    summarised = _summarise(store, owner, item, 0, rows)
    if item.sid[:2] not in _LOCATED:
        await summarised
        return
    locator = Row(item.sid, "item", {"Thread": thread_partition(owner, item.remote),
                                     "Key": item.key, "At": item.at})
    await asyncio.gather(summarised, store.insert(ITEMS, locator))


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
    partition, key, _ = _located(locator.fields["Thread"], locator.fields["Key"])
    for _ in range(MAX_ATTEMPTS):
        row = await store.get(CONVERSATIONS, partition, key)
        if row is None:
            return False  # the thread was deleted
        for name, value in changes.items():
            if value is None:
                row.fields.pop(_CHANGEABLE[name], None)
            else:
                row.fields[_CHANGEABLE[name]] = value
        try:
            await store.replace(CONVERSATIONS, row)
            break
        except Conflict:
            continue
    else:
        raise StoreUnavailable(f"{MAX_ATTEMPTS} conflicting writes on an item")
    if "status" in changes:
        owner, remote = locator.fields["Thread"].split("|", 1)

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
        thread, key = where.fields["Thread"], where.fields["Key"]
    elif (received := await store.get(RECEIVED, sid, "received")) is not None:
        thread, key = thread_partition(owner, received.fields["Remote"]), received.fields["Key"]
    else:
        return None
    partition, row_key, remote = _located(thread, key)
    if partition != owner_key(owner):
        return None
    row = await store.get(CONVERSATIONS, partition, row_key)
    return None if row is None else item_of(row, remote)


def _item_row(owner: str, item: Item, unread: bool) -> Row:
    return Row(owner_key(owner), item_row_key(item.remote, item.key), _item_fields(item, unread))


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
    """An item as its row keeps it (a row without ``Kind`` is an SMS)."""
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
    carried: list[list[Row]] = field(default_factory=list)  # sends' rows (keep_sent)
    marks: list[tuple[Item, Row]] = field(default_factory=list)  # kept items to summarise
    written: asyncio.Future[None] | None = None  # the next write: what waits goes with it

    def busy(self) -> bool:
        return super().busy() or self.written is not None


_summaries: Turns[_Summary] = Turns(_Summary)
_writes: set[asyncio.Task[None]] = set()  # held here: the loop keeps only weak references


async def _summarise(store: Store, owner: str, item: Item, unread: int,
                     carried: list[Row] | None = None, mark: Row | None = None) -> None:
    """Move the thread's summary to this item if it is the newest; count it unread; write
    ``carried`` in the same transaction. With ``mark``, the item's row as kept: it counts
    (newest, unread by its ``Unread``) only while it is there and not yet summarised."""
    summary = _summaries.at(store, owner_key(owner), item.remote)
    if mark is not None:
        summary.marks.append((item, mark))
    elif summary.newest is None or summary.newest.at <= item.at:
        summary.newest = item
    summary.unread += unread
    if carried:
        summary.carried.append(carried)
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
        carried, marks = summary.carried, summary.marks
        summary.written, summary.newest, summary.unread = None, None, 0
        summary.carried, summary.marks = [], []
        assert written is not None and (newest is not None or marks)
        remote = newest.remote if newest is not None else marks[0][0].remote
        created: list[bool] = []
        try:
            done = await _rewrite(store, owner_key(owner), remote,
                                  _moved_to(store, owner, newest, unread, marks, created),
                                  turn=summary, carried=carried, marks=marks)
            if created and created[-1] and done is not None:
                await _block_raced(store, owner, remote, done, summary)
        except BaseException as error:
            failure = error if isinstance(error, Exception) else StoreUnavailable(
                "the summary write was cancelled (the loop is closing)")
            written.set_exception(failure)
            written.exception()  # retrieved here: its requests may all be gone
            if not isinstance(error, Exception):
                raise
        else:
            written.set_result(None)


def _moved_to(store: Store, owner: str, newest: Item | None, unread: int,
              marks: list[tuple[Item, Row]], created: list[bool],
              ) -> Callable[[Row | None], Awaitable[dict[str, Any] | None]]:
    """The summary moved to the newest of ``newest`` and the items ``marks`` still holds
    (``_rewrite`` drops those deleted or summarised meanwhile), counting them unread."""
    async def change(row: Row | None) -> dict[str, Any] | None:
        items = [*([newest] if newest is not None else []), *(item for item, _ in marks)]
        if not items:
            return None
        last = max(items, key=lambda item: item.at)
        created.append(row is None)
        if row is None:
            blocked = await contacts.is_blocked(store, owner, last.remote)
            fields: dict[str, Any] = {"Unread": 0, "Blocked": blocked}
        else:
            fields = dict(row.fields)
        counted = unread + sum(1 for _, mark in marks if mark.fields.get("Unread"))
        fields["Unread"] = int(fields.get("Unread", 0)) + counted
        if row is None or utc(fields["LastAt"]) <= last.at:
            fields.update(LastKind=last.kind, LastSid=last.sid,
                          LastDirection=last.direction, LastStatus=last.status or "",
                          LastBody=last.body or "", LastAt=last.at, Line=last.line)
        return fields
    return change


def _set(fields: Mapping[str, Any], **changes: Any) -> dict[str, Any]:
    return {**fields, **changes}


#: What ``_rewrite``'s change answers to delete the summary and its activity row.
DELETE: dict[str, Any] = {}
Change = Callable[[Row | None], Awaitable[dict[str, Any] | None]]


async def _rewrite(store: Store, owner: str, remote: str, change: Change, *,
                   turn: _Summary | None = None, carried: Sequence[list[Row]] = (),
                   marks: list[tuple[Item, Row]] | None = None,
                   claimed: Sequence[Row] = ()) -> Row | None:
    """Write the thread's summary and activity row as ``change`` makes its fields from
    the row (None: leave it; ``DELETE``: delete both), in one transaction over the
    summary's ETag, read again on a conflict. Takes this instance's turn at the row
    unless the caller holds it (``turn``). Answers the summary as written.

    ``carried``: sends' rows (``keep_sent``) inserted in the same transaction; beyond
    ``MAX_TRANSACTION`` operations, the first sends go in transactions of their own just
    before it. ``marks``: kept items' rows marked ``Summarised`` in that transaction over
    their ETags; on a conflict, those deleted or summarised since leave the list (which
    ``change`` reads: they no longer count). ``claimed``: items ``change`` found read
    before their summary counted them, written read (no ``Unread``) over their ETags."""
    if turn is None:
        turn = _summaries.at(store, owner, remote)
        async with turn.taken():
            return await _rewrite(store, owner, remote, change, turn=turn, claimed=claimed)
    row, turn.row = turn.row, None  # until the store agrees again
    if row is None:
        row = await store.get(CONVERSATIONS, owner, f"{THREAD}{remote}")
    sends = list(carried)
    for attempt in range(MAX_ATTEMPTS):
        fields = await change(row)
        if fields is None and not sends:
            turn.row = row
            return row
        try:
            sends = await _transact_apart(store, owner, sends)
            written = await _transact_summary(store, owner, remote, row, fields,
                                              [one for rows in sends for one in rows],
                                              [mark for _, mark in marks or ()], claimed)
        except Conflict:
            await asyncio.sleep(random.uniform(0, 0.005 * 2**attempt))  # noqa: S311
            row = await store.get(CONVERSATIONS, owner, f"{THREAD}{remote}")
            sends = await _unwritten(store, owner, sends)
            if marks:
                marks[:] = await _unsummarised(store, marks)
            continue
        turn.row = written
        return written
    raise StoreUnavailable(f"{MAX_ATTEMPTS} conflicting writes on a conversation")


async def _transact_apart(store: Store, owner: str, sends: list[list[Row]]) -> list[list[Row]]:
    """Write the first sends in transactions of their own until the rest fit beside the
    summary's (at most 3) operations; answers the rest."""
    room, sends = MAX_TRANSACTION - 3, list(sends)
    while sum(len(rows) for rows in sends) > room:
        batch: list[list[Row]] = []
        while sends and sum(len(rows) for rows in batch) + len(sends[0]) <= MAX_TRANSACTION:
            batch.append(sends.pop(0))
        await store.transact(CONVERSATIONS, owner,
                             [("insert", one) for rows in batch for one in rows])
    return sends


async def _unwritten(store: Store, owner: str, sends: list[list[Row]]) -> list[list[Row]]:
    """The sends none of whose rows exist yet: a send found written (a transaction whose
    answer was lost, a retried webhook) is not written again. One query per 14 rows."""
    if not sends:
        return sends
    there = {row.key for row in await store.rows_keyed(
        CONVERSATIONS, owner, [one.key for rows in sends for one in rows])}
    return [rows for rows in sends if not any(one.key in there for one in rows)]


async def _unsummarised(store: Store, marks: list[tuple[Item, Row]]) -> list[tuple[Item, Row]]:
    """The marked items still there and not yet summarised, as the store has them now."""
    rows = await asyncio.gather(*(store.get(CONVERSATIONS, mark.partition, mark.key)
                                  for _, mark in marks))
    return [(item, row) for (item, _), row in zip(marks, rows, strict=True)
            if row is not None and not row.fields.get(SUMMARISED)]


async def _transact_summary(store: Store, owner: str, remote: str, row: Row | None,
                            fields: dict[str, Any] | None, carried: Sequence[Row] = (),
                            marked: Sequence[Row] = (), claimed: Sequence[Row] = (),
                            ) -> Row | None:
    inserts: list[Op] = [("insert", one) for one in carried]
    inserts += [("replace", Row(one.partition, one.key, {name: value for name, value
                                                         in one.fields.items()
                                                         if name != "Unread"}, one.etag))
                for one in claimed]
    room = MAX_TRANSACTION - 3 - len(inserts)
    for at in range(room, len(marked), MAX_TRANSACTION):  # beyond one transaction: apart
        await store.transact(CONVERSATIONS, owner, _marking(marked[at:at + MAX_TRANSACTION]))
    inserts += _marking(marked[:room])
    if fields is None:  # the summary stays as it is: the sends alone
        if inserts:
            await store.transact(CONVERSATIONS, owner, inserts)
        return row
    old = Row(owner, row.fields["Activity"]) if row and row.fields.get("Activity") else None
    ops: list[Op] = []
    if fields is DELETE:
        if row is None:
            return None
        ops = [("delete", row), *([("delete", old)] if old else []), *inserts]
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
    await store.transact(CONVERSATIONS, owner, [*ops, *inserts])
    return summary


def _marking(rows: Sequence[Row]) -> list[Op]:
    """Kept items' rows marked ``Summarised``, each only as it was read (its ETag)."""
    return [("replace", Row(row.partition, row.key, {**row.fields, SUMMARISED: True},
                            row.etag)) for row in rows]


def _deletions(row: Row) -> list[Op]:
    """An item's row and, for a message or call the app sent, its delivery (written with
    it, in one transaction)."""
    ops: list[Op] = [("delete", Row(row.partition, row.key))]
    if row.fields.get("Direction") == "outgoing" and row.fields.get("Kind", "sms") != "voicemail":
        ops.append(("delete", Row(row.partition, f"{DELIVERY}{row.fields['Sid']}")))
    return ops


async def _delete_items(store: Store, partition: str, rows: Sequence[Row]) -> int:
    """Delete items of one partition with their deliveries, by transactions of
    ``MAX_TRANSACTION``; one by one where a row went meanwhile. Answers how many items."""
    ops = [op for row in rows for op in _deletions(row)]
    for at in range(0, len(ops), MAX_TRANSACTION):
        batch = ops[at:at + MAX_TRANSACTION]
        try:
            await store.transact(CONVERSATIONS, partition, batch)
        except Conflict:  # one went meanwhile (the purge, a delete): the others one by one
            for op in batch:
                with contextlib.suppress(Conflict):
                    await store.transact(CONVERSATIONS, partition, [op])
    return len(rows)


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
    prefix = f"{ITEM}{remote}|"
    rows = await store.rows(CONVERSATIONS, owner_key(owner), start=f"{prefix}{start or ''}",
                            stop=f"{prefix}{time_key(stop)}", limit=limit)
    return [item_of(row, remote) for row in rows]


async def item_rows(store: Store, owner: str, remote: str) -> list[Row]:
    """Every item row of the thread, expired or not: one key range."""
    return await store.rows(CONVERSATIONS, owner_key(owner), start=f"{ITEM}{remote}|",
                            stop=f"{ITEM}{remote}}}")


# --- what an owner does to a thread ------------------------------------------------------------


async def mark_read(store: Store, owner: str, remote: str, up_to: str,
                    stop: datetime) -> int | None:
    """Read up to item ``up_to``: Unread becomes the number of unread items newer than it
    that the summary has counted (``Summarised``; the others count once they land). The
    summary keeps the newest item read (``ReadUpTo``): an older ``up_to`` (a device that
    has not caught up) changes nothing. ``up_to`` itself, not yet summarised, is written
    read in the same transaction: its pending count never lands. None if the thread or
    the item is not there (no newer than ``stop``)."""
    partition, prefix = owner_key(owner), f"{ITEM}{remote}|"
    found: dict[str, int] = {}
    claimed: list[Row] = []

    async def recount(row: Row | None) -> dict[str, Any] | None:
        found.clear()
        claimed.clear()
        if row is None:
            return None
        newer, start = 0, prefix
        while True:  # newest first until the item: what is newer is what stays unread
            rows = await store.rows(CONVERSATIONS, partition, start=start,
                                    stop=f"{prefix}{time_key(stop)}", limit=MAX_TRANSACTION)
            for each in rows:
                if each.fields["Sid"] == up_to:
                    return _read_to(row, each, newer, found, claimed)
                if each.fields.get(SUMMARISED) and each.fields.get("Unread"):
                    newer += 1
            if len(rows) < MAX_TRANSACTION:
                return None
            start = rows[-1].key + " "  # keys are all one length: the next one on

    written = await _rewrite(store, owner_key(owner), remote, recount, claimed=claimed)
    return found.get("unread") if written is not None else None


def _read_to(summary: Row, item: Row, newer: int, found: dict[str, int],
             claimed: list[Row]) -> dict[str, Any] | None:
    """The summary read up to ``item``, or None (left as it is) when it was read further."""
    read = summary.fields.get(READ_UP_TO)
    if read is not None and item.key > read:  # older: keys sort newest first
        found["unread"] = int(summary.fields.get("Unread", 0))
        return None
    found["unread"] = newer
    if item.fields.get("Unread") and not item.fields.get(SUMMARISED):
        claimed.append(item)
    return _set(summary.fields, Unread=newer, **{READ_UP_TO: item.key})


async def block(store: Store, owner: str, remote: str, blocked: bool, at: datetime) -> None:
    """Block or unblock ``remote`` for ``owner`` (``contacts``), and mark its thread, if
    there is one (summary and activity in one transaction)."""
    await contacts.set_blocked(store, owner, remote, blocked, at)
    await _rewrite(store, owner_key(owner), remote, _marked(blocked))


def _marked(blocked: bool) -> Change:
    """The summary (if any) marked blocked or not."""
    async def marked(row: Row | None) -> dict[str, Any] | None:
        if row is None or bool(row.fields.get("Blocked")) == blocked:
            return None
        return _set(row.fields, Blocked=blocked)
    return marked


async def _block_raced(store: Store, owner: str, remote: str, written: Row,
                       turn: _Summary) -> None:
    """A thread just created read its block before its write; a block (or unblock) set
    meanwhile found no thread to mark. Read it again once written (one point read): one
    of the two then sees the other's write."""
    blocked = await contacts.is_blocked(store, owner, remote)
    if blocked != bool(written.fields.get("Blocked")):
        await _rewrite(store, owner_key(owner), remote, _marked(blocked), turn=turn)


async def delete(store: Store, owner: str, remote: str) -> bool:
    """Delete the thread: its summary and activity row, then its items with their
    deliveries (by transactions of ``MAX_TRANSACTION``) and their locators. False if there
    was nothing to delete.

    Items go after the summary, so a thread whose deletion was cut short (a store
    failure) is deleted by the next try: its summary may be gone, its items are not."""
    existed: list[bool] = []

    async def gone(row: Row | None) -> dict[str, Any] | None:
        existed[:] = [row is not None]
        return DELETE if row is not None else None
    await _rewrite(store, owner_key(owner), remote, gone)
    rows = await item_rows(store, owner, remote)
    await _delete_items(store, owner_key(owner), rows)
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
    # Items of every owner whose time is past the cutoff: a filter over the item rows,
    # which Table Storage answers by scanning them (their keys sort by time only
    # within a thread), a page of 1000 per request.
    while expired := await store.rows(CONVERSATIONS, start=ITEM, stop="item}", limit=1000,
                                      at_or_before=cutoff):
        for partition in {row.partition for row in expired}:
            deleted += await _delete_items(
                store, partition, [row for row in expired if row.partition == partition])
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

