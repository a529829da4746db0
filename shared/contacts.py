"""Contacts: whose a remote number is, and who blocked it (docs/storage.md, ``contacts``).

One partition per remote number holds everything an incoming SMS or call must know
about it, so ``route`` answers with ONE query:

- ``sent|{line}|{ownerkey}`` (``Owner``, ``At``): the owner last texted or called the
  remote from ``line`` (a Twilio number, or a Messaging Service SID) at ``At``.
- ``block|{ownerkey}`` (``Owner``, ``At``): the owner blocked the remote.

``SMS_REPLY_ATTRIBUTION`` decides whose the remote is on a line: ``last-sender``, the
owner who last wrote to it from the number it reached (else from that number's
Messaging Service); ``recent-sender``, the one owner who did within
``SMS_REPLY_WINDOW_HOURS``, and nobody's when several did, so texting another user's
contact never diverts their replies. What is past ``MESSAGE_RETENTION_DAYS`` claims
nothing. Blocks never expire: they are the owner's setting, not a record.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared import retention
from shared.identity import ANONYMOUS, Caller
from shared.keys import digest
from shared.settings import ANONYMOUS_READER, Settings
from shared.store import Conflict, Row, Store, utc

TABLE = "contacts"
SENT = "sent|"
BLOCK = "block|"
#: What Twilio writes in From and To for SMS and calls: E.164, or a short code. A
#: contact's partition is one of these.
ADDRESS = re.compile(r"\+[1-9][0-9]{6,14}|[0-9]{3,8}")


@dataclass(frozen=True)
class Routing:
    """Whose an incoming SMS or call is, and whether that owner blocked its sender."""

    owner: str | None  # by SMS_REPLY_ATTRIBUTION, else ``fallback``
    blocked: bool      # ``owner`` blocked the remote
    why: str           # why attribution found nobody (for the log); "" when it found one


async def route(store: Store, settings: Settings, line: str, remote: str, at: datetime,
                fallback: str | None = None, *, service: str | None = None) -> Routing:
    """Whose ``remote`` is on ``line`` (and ``service``, the Messaging Service ``line``
    belongs to, for an SMS): one partition query."""
    rows = await store.rows(TABLE, remote)
    owner, why = _attributed(settings, [line, *([service] if service else [])], rows, at)
    if owner is None:
        owner = fallback
    blocked = owner is not None and any(row.key == _block_key(owner) for row in rows)
    return Routing(owner, blocked, why)


def _attributed(settings: Settings, lines: list[str], rows: list[Row],
                at: datetime) -> tuple[str | None, str]:
    cutoff = retention.cutoff(settings, at)
    sent = [(line, row) for line in lines for row in rows
            if row.key.startswith(f"{SENT}{line}|") and utc(row.fields["At"]) > cutoff]
    if settings.sms_reply_attribution == "last-sender":
        for line in lines:
            on_line = [row for each, row in sent if each == line]
            if on_line:
                return str(max(on_line, key=lambda row: utc(row.fields["At"]))
                           .fields["Owner"]), ""
        return None, "nobody wrote to this sender from this number within MESSAGE_RETENTION_DAYS"
    since = at - timedelta(hours=settings.sms_reply_window_hours)
    owners = {str(row.fields["Owner"]) for _, row in sent if utc(row.fields["At"]) >= since}
    if len(owners) == 1:
        return owners.pop(), ""
    who = "several users" if owners else "nobody"
    return None, f"{who} wrote to this sender from this number within SMS_REPLY_WINDOW_HOURS"


def unassigned_owner(settings: Settings) -> str | None:
    """The owner ``SMS_UNASSIGNED_OWNER`` names, if set: who reads what nobody claims."""
    reader = settings.sms_unassigned_owner
    if reader is None:
        return None
    if reader == ANONYMOUS_READER:
        return ANONYMOUS.owner
    provider, user_id = reader.split(":", 1)
    return Caller(user_id, provider).owner


async def owner_keyed(store: Store, remote: str, key: str) -> str | None:
    """The owner whose digest is ``key`` and who texted, called or blocked ``remote``
    (one partition query): a URL that carries only the digest names its owner again."""
    for row in await store.rows(TABLE, remote):
        if row.key.endswith(f"|{key}") and row.key.startswith((SENT, BLOCK)):
            return str(row.fields["Owner"])
    return None


async def note_sent(store: Store, line: str, remote: str, owner: str, at: datetime) -> None:
    """The owner texted or called ``remote`` from ``line``: their replies and calls back
    are the owner's (by ``SMS_REPLY_ATTRIBUTION``)."""
    await store.upsert(TABLE, Row(remote, f"{SENT}{line}|{digest(owner)}",
                                  {"Owner": owner, "At": at}))


async def set_blocked(store: Store, owner: str, remote: str, blocked: bool,
                      at: datetime) -> None:
    """Block (or unblock) ``remote`` for ``owner``: idempotent. Only the block row:
    ``shared.threads.block`` also marks the thread."""
    if blocked:
        await store.upsert(TABLE, Row(remote, _block_key(owner), {"Owner": owner, "At": at}))
    elif (row := await store.get(TABLE, remote, _block_key(owner))) is not None:
        with contextlib.suppress(Conflict):  # blocked again meanwhile: the newer word
            await store.delete(TABLE, row)


async def is_blocked(store: Store, owner: str, remote: str) -> bool:
    """Whether ``owner`` blocked ``remote``: one point read."""
    return await store.get(TABLE, remote, _block_key(owner)) is not None


async def purge_sent(store: Store, cutoff: datetime) -> int:
    """Delete the ``sent|`` rows at or past ``cutoff`` (they claim nothing any more);
    blocks stay. Answers how many went."""
    deleted = 0
    for row in await store.rows(TABLE):
        if row.key.startswith(SENT) and utc(row.fields["At"]) <= cutoff:
            with contextlib.suppress(Conflict):  # written since: a new send, kept
                await store.delete(TABLE, row)
                deleted += 1
    return deleted


def _block_key(owner: str) -> str:
    return f"{BLOCK}{digest(owner)}"
