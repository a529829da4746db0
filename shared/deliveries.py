"""Deliveries kept in Table Storage: row ``delivery|{sid}`` in its owner's partition of
``conversations`` (see docs/storage.md).

A send's delivery is written with its item and its thread's summary, in ONE
entity-group transaction (``shared.threads.keep_sent``), before the client hears of the
SID. Twilio reports each status to the URL the app gave it, which names the owner's key
(``?owner=``: Twilio signs the whole URL, so nobody can change it), so a callback is one
point read and one write over the row's ETag; on a conflict (another instance wrote
first) it reads again. A callback without the owner's key (the TwiML App's, for calls
from the app) finds it through the call's locator (``shared.threads``).

Each instance remembers the delivery rows it last wrote (the send's transaction, its
last callback), ETag included, as the rate-limit counters do (``shared.turns``): a
callback that reaches the instance that sent, or that took the previous callback, is
ONE write over the remembered ETag. If another instance wrote since, the write fails
on the ETag and the report is applied again to the row read afresh: memory saves the
read, never decides what the row says.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
from datetime import UTC, datetime
from typing import Any, Literal

from shared import contacts, push, threads
from shared.delivery_status import TERMINAL, Delivery, Event, Kind, StatusReport
from shared.identity import Caller
from shared.problems import misconfigured, not_found, store_unavailable
from shared.settings import Settings
from shared.store import RETRY_AFTER, Conflict, Row, Store, StoreUnavailable, store_for, utc
from shared.turns import Turn, Turns
from shared.urls import STATUS_CALLBACK_OVERRIDES, function_url

logger = logging.getLogger("twilio_functions.deliveries")

TABLE = threads.CONVERSATIONS
#: The query parameter of the StatusCallback URL that names the owner's partition.
OWNER = "owner"
_OWNER_KEY = re.compile(r"[0-9a-f]{32}")
#: Conflicting writers a callback tolerates before it gives up (then 503, which Twilio
#: retries because the StatusCallback URL asks it to: ``STATUS_CALLBACK_OVERRIDES``).
MAX_ATTEMPTS = 10
#: How long an unknown SID's report waits for the row before it is let go: the
#: first callback can overtake the write that follows Twilio's answer to the send.
UNKNOWN_GRACE = 0.5

Outcome = Literal["recorded", "duplicate", "unknown", "untracked"]

#: The delivery rows this instance last wrote or read, with their ETags (bounded, least
#: recently used first out), and the turns its callbacks take at each.
_kept: Turns[Turn] = Turns(Turn)


def status_callback_url(request_url: str, settings: Settings, owner: str) -> str | None:
    """Where Twilio should report the statuses of what ``owner`` sends (the owner's key in
    the query, which Twilio signs with the rest of the URL), and how it retries a report
    that failed (``STATUS_CALLBACK_OVERRIDES``); None when nothing would keep them."""
    if settings.state_connection is None:
        return None
    return function_url(request_url, settings, "status_callback",
                        query={OWNER: threads.owner_key(owner)},
                        overrides=STATUS_CALLBACK_OVERRIDES)


def callback_owner(params: dict[str, str]) -> str | None:
    """The owner's key a StatusCallback URL names (``status_callback_url``), if any."""
    value = params.get(OWNER)
    return value if value is not None and _OWNER_KEY.fullmatch(value) else None


def row_key(sid: str) -> str:
    return f"{threads.DELIVERY}{sid}"


async def remember_sent(settings: Settings, caller: Caller, kind: Kind, sent: dict[str, Any],
                        item: threads.Item | None = None) -> None:
    """Record a message or call Twilio just created, so its callbacks and owner find it:
    its delivery and its item on the owner's thread with the recipient (``item``; by
    default one without a body, from ``sent``), with the thread's summary, in ONE
    transaction, done before the client hears of the SID. Its status follows from
    ``status_callback``.

    Never raises: the message was sent whatever happens here, so a store
    failure is logged, with the SID, and the client still gets its 201.
    """
    store = store_for(settings)
    if store is None:
        return
    now = datetime.now(UTC)
    status = sent.get("status") or "queued"
    delivery = Delivery.created_now(sent["sid"], kind, caller.owner, sent["to"], status, now)
    if item is None:
        item = threads.Item(sent["sid"], kind, "outgoing", sent["to"], sent.get("from") or "",
                            now, status=status if kind == "call" else None)
    row = _row(delivery)
    try:
        await threads.keep_sent(store, caller.owner, item, [row])
    except StoreUnavailable as error:
        logger.error("store=unavailable sid=%s kind=%s cause=%s: its delivery status will "
                     "not be tracked, and it is missing from its thread", delivery.sid, kind,
                     str(error).replace(" ", "_"))
        return
    if row.etag is not None:  # None: written by an earlier try whose answer was lost
        turn = _kept.at(store, row.partition, row.key)
        if not turn.busy():  # a callback already at it knows better
            turn.row = row


async def note_sent(settings: Settings, owner: str, line: str | None, to: str,
                    at: datetime) -> None:
    """Make ``to``'s replies and calls back ``owner``'s (``contacts.note_sent``): written
    while Twilio is asked to send, so it costs the send no round trip of its own (a send
    Twilio refuses still names its sender). Never raises: logged."""
    store = store_for(settings)
    if store is None or line is None:
        return
    try:
        await contacts.note_sent(store, line, to, owner, at)
    except StoreUnavailable as error:
        logger.error("store=unavailable cause=%s: replies from this recipient may not find "
                     "their sender", str(error).replace(" ", "_"))


async def record_report(settings: Settings, report: StatusReport,
                        partition: str | None = None) -> Outcome:
    """Apply a status callback to its delivery in ``partition`` (the owner's key
    its URL names); 503 problem if the store cannot be reached."""
    store = store_for(settings)
    if store is None:
        return "untracked"
    try:
        return await _record(store, report, settings, partition)
    except StoreUnavailable:
        raise store_unavailable(RETRY_AFTER) from None


async def _owner_of(store: Store, sid: str) -> str | None:
    """A call's owner key from its locator: for reports whose URL names no owner."""
    if not sid.startswith("CA"):
        return None
    locator = await store.get(threads.ITEMS, sid, "item")
    return None if locator is None else str(locator.fields["Thread"]).split("|", 1)[0]


async def _record(store: Store, report: StatusReport, settings: Settings | None = None,
                  partition: str | None = None) -> Outcome:
    partition = partition or await _owner_of(store, report.sid)
    if partition is None:  # a call's locator may still be on its way: wait once
        await asyncio.sleep(UNKNOWN_GRACE)
        partition = await _owner_of(store, report.sid)
        if partition is None:
            return "unknown"  # another app's SID on this account, or one never recorded
    turn = _kept.at(store, partition, row_key(report.sid))
    async with turn.taken():
        return await _apply(store, report, settings, partition, turn)


async def _apply(store: Store, report: StatusReport, settings: Settings | None,
                 partition: str, turn: Turn) -> Outcome:
    """Apply the report to the row this instance remembers (``turn.row``), else to the row
    read; on a conflict, to the row read again. ``turn.row`` is left as last written."""
    row, remembered = turn.row, turn.row is not None
    turn.row = None  # until the store agrees again
    for attempt in range(MAX_ATTEMPTS):
        if row is None:
            row = await store.get(TABLE, partition, row_key(report.sid))
            if row is None and attempt == 0:
                # The first callback can overtake the write that follows Twilio's answer.
                await asyncio.sleep(UNKNOWN_GRACE)
                row = await store.get(TABLE, partition, row_key(report.sid))
            if row is None:
                return "unknown"  # another app's SID, one never recorded, or expired
        delivery = _delivery(row)
        if not delivery.apply(report, datetime.now(UTC)):
            # Seen before in this row, so in every later version of it too.
            turn.row = row
            return "duplicate"
        if _ends_call(delivery, report):  # before the delivery: a retry finds it again
            await threads.update(store, delivery.sid, {"status": delivery.status,
                                                       "duration": delivery.duration})
        written = _row(delivery, row.partition, row.etag)
        try:
            await store.replace(TABLE, written)
        except Conflict:
            if not remembered:
                # Another instance wrote first: back off a little, at random, and reread.
                await asyncio.sleep(random.uniform(0, 0.005 * 2**attempt))  # noqa: S311
            row, remembered = None, False  # a remembered row was stale: read it now
            continue
        turn.row = written
        if settings and delivery.kind == "sms" and report.status in ("undelivered", "failed"):
            await push.enqueue(settings, delivery.owner, "failed", delivery.to, delivery.sid)
        return "recorded"
    raise StoreUnavailable(f"{MAX_ATTEMPTS} conflicting writes on {report.sid}")


def _ends_call(delivery: Delivery, report: StatusReport) -> bool:
    """The call's own report of its final status: the one that updates its thread item
    (status and duration), so a call costs its thread one write, not one per step."""
    return (delivery.kind == "call" and not report.leg and report.status in TERMINAL
            and delivery.status == report.status)


async def find(settings: Settings, caller: Caller, sid: str) -> Delivery:
    """The caller's delivery; 404 alike for a SID unknown and one of another owner."""
    store = store_for(settings)
    if store is None:
        raise misconfigured("STATE_STORAGE", "(or AzureWebJobsStorage) is required for "
                            "delivery status")
    try:
        row = await store.get(TABLE, threads.owner_key(caller.owner), row_key(sid))
    except StoreUnavailable:
        raise store_unavailable(RETRY_AFTER) from None
    if row is None or row.fields.get("Owner") != caller.owner:
        raise not_found(f"no message or call {sid} for this caller")
    return _delivery(row)


async def find_many(store: Store, owner: str, sids: list[str]) -> dict[str, Delivery]:
    """The owner's deliveries of these SIDs that the store has (a conversation's page): one
    filtered query per 14 SIDs, at once."""
    if not sids:
        return {}
    rows = await store.rows_keyed(TABLE, threads.owner_key(owner), map(row_key, sids))
    return {delivery.sid: delivery for delivery in map(_delivery, rows)}


def _row(delivery: Delivery, partition: str | None = None, etag: str | None = None) -> Row:
    fields: dict[str, Any] = {
        "Kind": delivery.kind,
        "Owner": delivery.owner,
        "To": delivery.to,
        "Status": delivery.status,
        "Created": delivery.created,
        "Updated": delivery.updated,
        "History": json.dumps([[e.status, e.at.isoformat(), e.sequence]
                               for e in delivery.history]),
        "Tokens": json.dumps(delivery.tokens),
    }
    optional = {"Sequence": delivery.sequence, "ErrorCode": delivery.error_code,
                "Duration": delivery.duration}
    fields.update({name: value for name, value in optional.items() if value is not None})
    return Row(partition or threads.owner_key(delivery.owner), row_key(delivery.sid), fields,
               etag)


def _delivery(row: Row) -> Delivery:
    fields = row.fields
    return Delivery(
        sid=row.key.removeprefix(threads.DELIVERY),
        kind=fields["Kind"],
        owner=fields["Owner"],
        to=fields["To"],
        status=fields["Status"],
        created=utc(fields["Created"]),
        updated=utc(fields["Updated"]),
        history=[Event(status, datetime.fromisoformat(at), sequence)
                 for status, at, sequence in json.loads(fields["History"])],
        sequence=fields.get("Sequence"),
        error_code=fields.get("ErrorCode"),
        duration=fields.get("Duration"),
        tokens=json.loads(fields["Tokens"]),
    )
