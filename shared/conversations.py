"""Conversations: what a user reads and does with their threads (docs/api.md, docs/storage.md).

The items, summaries and their keys are ``shared.threads``'; whose an incoming
message is, ``shared.contacts``'. Here: recording the SMS the app sends and
receives, the pages of the ``conversations`` function (cursors opaque: base64url of
a row key, validated on the way back), the owner's actions on a thread (read up to
an item, delete, block), and the nightly purge of what is past
``MESSAGE_RETENTION_DAYS``: older items are never read back (every query stops at
the cutoff) and ``purge_expired`` deletes them.

A message nobody claims goes to ``SMS_UNASSIGNED_OWNER``; without one it is kept
unattributed, shown to nobody, and counted in the log.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import azure.functions as func

from shared import contacts, deliveries, opt_outs, push, retention, threads
from shared.contacts import ADDRESS, unassigned_owner
from shared.delivery_status import Delivery, iso
from shared.identity import Caller
from shared.logs import mask
from shared.phone import canonical_address
from shared.problems import (
    TWILIO_ERROR_DOCS,
    invalid_field,
    method_not_allowed,
    misconfigured,
    not_found,
    store_unavailable,
)
from shared.request_body import capped_body, read_payload
from shared.settings import Settings
from shared.store import RETRY_AFTER, Conflict, Row, Store, StoreUnavailable, store_for, utc
from shared.threads import Item, Thread

logger = logging.getLogger("twilio_functions.conversations")

CONVERSATIONS = threads.CONVERSATIONS
RECEIVED = threads.RECEIVED
UNATTRIBUTED = "unattributed"
DEFAULT_PAGE = 50
MAX_PAGE = 100
#: The SID of a thread item: a message, a call, a voicemail's recording.
ITEM_SID = re.compile(r"(SM|MM|CA|RE)[0-9a-f]{32}")
_ITEM_KEY = re.compile(r"[0-9]{17}-(SM|MM|CA|RE)[0-9a-f]{32}")
_ACTIVITY_KEY = re.compile(rf"activity\|[0-9]{{17}}\|({ADDRESS.pattern})")
_BASE64URL = re.compile(r"[A-Za-z0-9_-]{1,200}")

#: Where a client fetches media ``n`` of an item (``shared.media``): Twilio's URLs for
#: MMS media and recordings need the account's credentials.
MediaLink = Callable[[str, int], str]


def sms(sid: str, direction: threads.Direction, remote: str, line: str, body: str | None,
        media_urls: tuple[str, ...] = (), at: datetime | None = None) -> Item:
    """An SMS as a thread item."""
    return Item(sid, "sms", direction, remote, line, at or datetime.now(UTC), body=body,
                media_urls=media_urls)


# --- what a request asks ---------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    """Which page of a list a client asks for: at most ``limit`` items from the row key
    ``cursor`` on."""

    cursor: str | None = None
    limit: int = DEFAULT_PAGE


@dataclass(frozen=True)
class Action:
    """What a ``conversations`` request asks: ``list``, ``thread``, ``read``, ``delete``,
    ``block`` or ``unblock``, of which thread (``number``), with what."""

    name: str
    number: str | None = None
    page: Page = Page()
    up_to: str | None = None


#: (method, has number, action segment) -> the action.
_ACTIONS = {("GET", False, None): "list", ("GET", True, None): "thread",
            ("DELETE", True, None): "delete", ("POST", True, "read"): "read",
            ("PUT", True, "block"): "block", ("DELETE", True, "block"): "unblock"}


def read_action(req: func.HttpRequest) -> Action:
    """The action the method and route ask for, its number, page or body read and
    validated; 404 for a route there is none at, 405 for a method the route does not take."""
    number_text = req.route_params.get("number") or None
    segment = req.route_params.get("action") or None
    if segment not in (None, "read", "block"):
        raise not_found(f"no conversations action '{segment[:20]}'")
    name = _ACTIONS.get((req.method, number_text is not None, segment))
    if name is None:
        allowed = tuple(method for (method, numbered, each) in _ACTIONS
                        if numbered == (number_text is not None) and each == segment)
        raise method_not_allowed(req.method, allowed)
    number = read_number(number_text) if number_text else None
    if name in ("list", "thread"):
        page = list_page(req.params) if name == "list" else message_page(req.params)
        return Action(name, number, page)
    if name == "read":
        payload = read_payload(req)
        payload.reject_unknown(("up_to",))
        up_to = payload.text("up_to", max_length=34, required=True)
        if up_to is None or not ITEM_SID.fullmatch(up_to):
            raise invalid_field("up_to", "must be the SID of an item of the conversation")
        return Action(name, number, up_to=up_to)
    if capped_body(req):
        read_payload(req).reject_unknown(())
    return Action(name, number)


def read_page(params: Mapping[str, str], cursor_shape: re.Pattern[str]) -> Page:
    """``limit`` (1-100) and ``cursor`` (as a previous page's ``next`` gave it); 400 if not.

    Blank is unset, for both: Azure drops empty query parameters before the app sees them.
    """
    limit = params.get("limit") or str(DEFAULT_PAGE)
    if not (limit.isascii() and limit.isdecimal()) or not 1 <= int(limit) <= MAX_PAGE:
        raise invalid_field("limit", f"must be a whole number from 1 to {MAX_PAGE}")
    cursor = params.get("cursor") or None
    key = None if cursor is None else _unwrapped(cursor)
    if cursor is not None and (key is None or not cursor_shape.fullmatch(key)):
        raise invalid_field("cursor", "must be the 'next' of a previous page")
    return Page(key, int(limit))


def list_page(params: Mapping[str, str]) -> Page:
    return read_page(params, _ACTIVITY_KEY)


def message_page(params: Mapping[str, str]) -> Page:
    return read_page(params, _ITEM_KEY)


def cursor_of(key: str) -> str:
    """A row key as a cursor: base64url without padding, nothing a URL must escape."""
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def _unwrapped(cursor: str) -> str | None:
    if not _BASE64URL.fullmatch(cursor):
        return None
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def read_number(text: str) -> str:
    """The remote number of a conversation, in the spelling it is kept in; 400 if it cannot
    be one."""
    if not ADDRESS.fullmatch(text):
        raise invalid_field("number", "must be a phone number in E.164 form (+14155552671) "
                            "or a short code")
    return canonical_address(text)


# --- writing ---------------------------------------------------------------------------


async def record_outgoing(settings: Settings, caller: Caller, line: str | None,
                          sent: dict[str, Any], body: str | None,
                          media_urls: list[str], now: datetime) -> None:
    """Keep a message the caller just sent on its thread, with its delivery: one
    transaction (``deliveries.remember_sent``). Never raises: logged with the SID."""
    item = sms(sent["sid"], "outgoing", sent["to"], sent.get("from") or line or "", body,
               tuple(media_urls), now)
    await deliveries.remember_sent(settings, caller, "sms", sent, item)


async def record_incoming(store: Store, settings: Settings, message: Item,
                          service: str | None) -> str:
    """Keep an incoming message in the conversation it continues: ``attributed``,
    ``blocked`` (kept, not counted unread), ``unassigned`` (to ``SMS_UNASSIGNED_OWNER``),
    ``unattributed`` (kept, shown to nobody) or ``duplicate`` (Twilio's retry)."""
    # Remote and Key find the message again from its SID alone (threads.find, media).
    if not await store.insert(RECEIVED, Row(message.sid, "received", {
            "At": message.at, "Remote": message.remote, "Key": message.key})):
        return "duplicate"  # Twilio delivered the webhook again: kept once
    routing = await contacts.route(store, settings, message.line, message.remote, message.at,
                                   unassigned_owner(settings), service=service)
    if routing.owner is None:
        await threads.keep(store, UNATTRIBUTED, message, unread=True, listed=False)
    else:
        await threads.keep(store, routing.owner, message, unread=not routing.blocked)
        if not routing.blocked:
            await push.enqueue(settings, routing.owner, "sms", message.remote, message.sid,
                               message.body)
    if not routing.why:
        return "blocked" if routing.blocked else "attributed"
    outcome = "unassigned" if routing.owner else "unattributed"
    logger.warning("incoming sms sid=%s from=%s %s: %s", message.sid, mask(message.remote),
                   outcome, routing.why)
    return outcome


# --- reading ---------------------------------------------------------------------------


async def list_for(settings: Settings, caller: Caller, page: Page,
                   now: datetime) -> dict[str, Any]:
    """The caller's conversations by last activity, newest first: ``limit + 1`` activity
    rows, then one opt-out query per line on the page."""
    store = required_store(settings)
    async with _answering():
        rows = await threads.listed(store, caller.owner, page.cursor,
                                    retention.cutoff(settings, now), page.limit + 1)
        shown = [thread for _, thread in rows[:page.limit]]
        stopped = await opt_outs.opted_out(store, [(t.line, t.remote) for t in shown])
    return {
        "conversations": [{
            "number": thread.remote, "unread": thread.unread,
            "opted_out": (thread.line, thread.remote) in stopped, "blocked": thread.blocked,
            "last_item": _last_item(thread),
        } for thread in shown],
        "next": cursor_of(rows[page.limit][0]) if len(rows) > page.limit else None,
    }


async def thread_for(settings: Settings, caller: Caller, remote: str, page: Page,
                     now: datetime, media_link: MediaLink) -> dict[str, Any]:
    """The caller's items with ``remote``, newest first, outgoing SMS with their status.

    404 alike for a conversation of another user and none at all. Reading does not
    mark it read: ``read`` does.
    """
    store = required_store(settings)
    cutoff = retention.cutoff(settings, now)
    async with _answering():
        thread = await _thread(store, caller, remote, cutoff)
        found = await threads.items(store, caller.owner, remote, page.cursor, cutoff,
                                    page.limit + 1)
        shown = found[:page.limit]
        sent, stopped = await asyncio.gather(
            deliveries.find_many(store, caller.owner,
                                 [i.sid for i in shown
                                  if i.kind == "sms" and i.direction == "outgoing"]),
            opt_outs.opted_out(store, [(thread.line, remote)]))
    return {
        "number": remote, "unread": thread.unread, "opted_out": bool(stopped),
        "blocked": thread.blocked,
        "items": [item_view(item, media_link, sent.get(item.sid)) for item in shown],
        "next": cursor_of(found[page.limit].key) if len(found) > page.limit else None,
    }


def item_view(item: Item, media_link: MediaLink,
              delivery: Delivery | None = None) -> dict[str, Any]:
    """The public shape (openapi.yaml's ConversationItem): an incoming SMS's media and a
    voicemail's recording as links to ``media``."""
    incoming = item.direction == "incoming"
    view: dict[str, Any] = {
        "kind": item.kind, "sid": item.sid, "direction": item.direction,
        "from": item.remote if incoming else item.line,
        "to": item.line if incoming else item.remote,
        "status": item.status, "at": iso(item.at)}
    if item.kind == "sms":
        error_code = delivery.error_code if delivery else None
        view.update(
            status="received" if incoming else delivery.status if delivery else item.status,
            body=item.body, error_code=error_code,
            media_urls=([media_link(item.sid, n) for n in range(len(item.media_urls))]
                        if incoming else list(item.media_urls)),
            more_info=TWILIO_ERROR_DOCS.format(code=error_code) if error_code else None)
    elif item.kind == "call":
        view["duration"] = item.duration
    else:
        view.update(duration=item.duration, recording_url=media_link(item.sid, 0),
                    transcription=item.transcription,
                    transcription_status=item.transcription_status)
    return view


def _last_item(thread: Thread) -> dict[str, Any]:
    incoming_sms = thread.last_kind == "sms" and thread.last_direction == "incoming"
    return {"kind": thread.last_kind, "sid": thread.last_sid,
            "direction": thread.last_direction,
            "status": "received" if incoming_sms else thread.last_status,
            "body": thread.last_body, "at": iso(thread.last_at)}


async def incoming_media(settings: Settings, caller: Caller, sid: str,
                         now: datetime) -> tuple[str, ...]:
    """The Twilio media URLs of an incoming message in one of the caller's threads.

    404 alike for a SID unknown, another user's and one past the retention.
    """
    store = required_store(settings)
    async with _answering():
        item = await threads.find(store, caller.owner, sid)
    if item is None or item.kind != "sms" or item.at <= retention.cutoff(settings, now):
        raise not_found(f"no incoming message {sid} for this caller")
    return item.media_urls


# --- what the owner does ----------------------------------------------------------------


async def mark_read(settings: Settings, caller: Caller, remote: str, up_to: str,
                    now: datetime) -> dict[str, Any]:
    """Read the thread up to item ``up_to``: its new unread count. 404 alike for no such
    thread and another user's; 400 for an item the thread does not have."""
    store = required_store(settings)
    cutoff = retention.cutoff(settings, now)
    async with _answering():
        await _thread(store, caller, remote, cutoff)
        unread = await threads.mark_read(store, caller.owner, remote, up_to, cutoff)
    if unread is None:
        raise invalid_field("up_to", "must be the SID of an item of the conversation")
    return {"number": remote, "unread": unread}


async def delete(settings: Settings, caller: Caller, remote: str) -> None:
    """Delete the thread and its items; 404 if there is none (or it is another user's,
    or already deleted: a client retrying a lost answer reads that as done)."""
    store = required_store(settings)
    async with _answering():
        deleted = await threads.delete(store, caller.owner, remote)
    if not deleted:
        raise not_found(f"no conversation with {mask(remote)} for this caller")


async def block(settings: Settings, caller: Caller, remote: str, blocked: bool,
                now: datetime) -> None:
    """Block (or unblock) ``remote`` for the caller, thread or none: idempotent."""
    store = required_store(settings)
    async with _answering():
        await threads.block(store, caller.owner, remote, blocked, now)


async def _thread(store: Store, caller: Caller, remote: str, cutoff: datetime) -> Thread:
    thread = await threads.summary(store, caller.owner, remote)
    if thread is None or thread.last_at <= cutoff:
        raise not_found(f"no conversation with {mask(remote)} for this caller")
    return thread


@contextlib.asynccontextmanager
async def _answering() -> Any:
    """The store down is a 503 the client may retry."""
    try:
        yield
    except StoreUnavailable:
        raise store_unavailable(RETRY_AFTER) from None


# --- retention ---------------------------------------------------------------------------


async def purge_expired(settings: Settings, now: datetime) -> int:
    """Delete what is older than ``MESSAGE_RETENTION_DAYS``: items, locators, summaries,
    contacts' sends (not blocks), received SIDs.

    Run daily by ``purge_messages``; reads stop at the cutoff anyway, so what
    waits here for deletion is never shown. Answers how many rows went.
    """
    store = required_store(settings)
    cutoff = retention.cutoff(settings, now)
    deleted = await threads.purge(store, cutoff) + await contacts.purge_sent(store, cutoff)
    for row in await store.rows(RECEIVED):
        if utc(row.fields["At"]) <= cutoff:
            with contextlib.suppress(Conflict):
                await store.delete(RECEIVED, row)
                deleted += 1
    return deleted


def required_store(settings: Settings, what: str = "conversations") -> Store:
    """The store, or 500 ``misconfigured`` naming ``STATE_STORAGE``: ``what`` needs it."""
    store = store_for(settings)
    if store is None:
        raise misconfigured("STATE_STORAGE", "(or AzureWebJobsStorage) is required for "
                            f"{what}")
    return store
