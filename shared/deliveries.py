"""Deliveries kept in Table Storage: one row per SID (see docs/storage.md).

The row's partition key is the SID, so every message or call is its own
partition: callbacks for different SIDs never contend, and the load spreads
over as many partitions as there are SIDs. A callback reads the row, applies
the report (``shared.delivery_status``) and writes it back only if the row's
ETag is unchanged; on a conflict (another instance wrote first) it reads again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from datetime import UTC, datetime
from typing import Any, Literal

from shared import contacts, push, threads
from shared.delivery_status import TERMINAL, Delivery, Event, Kind, StatusReport
from shared.identity import Caller
from shared.problems import misconfigured, not_found, store_unavailable
from shared.settings import Settings
from shared.store import RETRY_AFTER, Conflict, Row, Store, StoreUnavailable, store_for, utc
from shared.urls import STATUS_CALLBACK_OVERRIDES, function_url

logger = logging.getLogger("twilio_functions.deliveries")

TABLE = "deliveries"
ROW_KEY = "delivery"
#: Conflicting writers a callback tolerates before it gives up (then 503, which Twilio
#: retries because the StatusCallback URL asks it to: ``STATUS_CALLBACK_OVERRIDES``).
MAX_ATTEMPTS = 10
#: How long an unknown SID's report waits for the row before it is let go: the
#: first callback can overtake the write that follows Twilio's answer to the send.
UNKNOWN_GRACE = 0.5

Outcome = Literal["recorded", "duplicate", "unknown", "untracked"]


def status_callback_url(request_url: str, settings: Settings) -> str | None:
    """Where Twilio should report this request's statuses, and how it retries a report that
    failed (``STATUS_CALLBACK_OVERRIDES``); None when nothing would keep them."""
    if settings.state_connection is None:
        return None
    return function_url(request_url, settings, "status_callback",
                        overrides=STATUS_CALLBACK_OVERRIDES)


async def remember_sent(settings: Settings, caller: Caller, kind: Kind,
                        sent: dict[str, Any]) -> None:
    """Record a message or call Twilio just created, so its callbacks and owner find it.

    Never raises: the message was sent whatever happens here, so a store
    failure is logged, with the SID, and the client still gets its 201.
    """
    store = store_for(settings)
    if store is None:
        return
    now = datetime.now(UTC)
    delivery = Delivery.created_now(sent["sid"], kind, caller.owner, sent["to"],
                                    sent["status"] or "queued", now)
    try:
        await store.insert(TABLE, _row(delivery))
    except StoreUnavailable as error:
        logger.error("store=unavailable sid=%s kind=%s cause=%s: its delivery status will "
                     "not be tracked", delivery.sid, kind, str(error).replace(" ", "_"))


async def record_placed(settings: Settings, owner: str, placed: dict[str, Any], line: str,
                        now: datetime) -> None:
    """Put a call the owner placed (``make_call``, or from the app through ``voice``) on
    their thread with the callee, and make the callee's calls and texts back theirs
    (``contacts.note_sent``). Its status and duration follow from ``status_callback``.

    Never raises: the call is placed whatever happens here, so a store failure is logged
    with the SID.
    """
    store = store_for(settings)
    if store is None:
        return
    item = threads.Item(placed["sid"], "call", "outgoing", placed["to"], line, now,
                        status=placed.get("status") or "queued")
    try:
        await asyncio.gather(threads.keep(store, owner, item, unread=False),
                             contacts.note_sent(store, line, placed["to"], owner, now))
    except StoreUnavailable as error:
        logger.error("store=unavailable sid=%s cause=%s: the call is missing from its "
                     "thread", item.sid, str(error).replace(" ", "_"))


async def record_report(settings: Settings, report: StatusReport) -> Outcome:
    """Apply a status callback to its delivery; 503 problem if the store cannot be reached."""
    store = store_for(settings)
    if store is None:
        return "untracked"
    try:
        return await _record(store, report, settings)
    except StoreUnavailable:
        raise store_unavailable(RETRY_AFTER) from None


async def _record(store: Store, report: StatusReport,
                  settings: Settings | None = None) -> Outcome:
    for attempt in range(MAX_ATTEMPTS):
        row = await store.get(TABLE, report.sid, ROW_KEY)
        if row is None and attempt == 0:
            await asyncio.sleep(UNKNOWN_GRACE)
            row = await store.get(TABLE, report.sid, ROW_KEY)
        if row is None:
            return "unknown"  # another app's SID on this account, or one never recorded
        delivery = _delivery(row)
        if not delivery.apply(report, datetime.now(UTC)):
            return "duplicate"
        if _ends_call(delivery, report):  # before the delivery: a retry finds it again
            await threads.update(store, delivery.sid, {"status": delivery.status,
                                                       "duration": delivery.duration})
        try:
            await store.replace(TABLE, _row(delivery, row.etag))
        except Conflict:
            # Another instance wrote first: back off a little, at random, and reread.
            await asyncio.sleep(random.uniform(0, 0.005 * 2**attempt))  # noqa: S311
            continue
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
        row = await store.get(TABLE, sid, ROW_KEY)
    except StoreUnavailable:
        raise store_unavailable(RETRY_AFTER) from None
    if row is None or row.fields.get("Owner") != caller.owner:
        raise not_found(f"no message or call {sid} for this caller")
    return _delivery(row)


async def find_many(store: Store, sids: list[str]) -> dict[str, Delivery]:
    """The deliveries of these SIDs that the store has, read at once (a conversation's page)."""
    rows = await asyncio.gather(*(store.get(TABLE, sid, ROW_KEY) for sid in sids))
    return {row.partition: _delivery(row) for row in rows if row is not None}


def _row(delivery: Delivery, etag: str | None = None) -> Row:
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
    return Row(delivery.sid, ROW_KEY, fields, etag)


def _delivery(row: Row) -> Delivery:
    fields = row.fields
    return Delivery(
        sid=row.partition,
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
