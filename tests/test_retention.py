"""The purge's edge: a conversation exactly MESSAGE_RETENTION_DAYS old is past it, a second
younger is not (real Table Storage, Azurite).

The purge reads every table of the session's Azurite, so these tests live in
2001, long before any other test's rows: what they purge is only their own.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import pytest
import unique
from harness import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER
from storage import run, shared_azurite

from shared import conversations, deliveries, threads
from shared.conversations import list_for, list_page, purge_expired, sms
from shared.identity import Caller
from shared.settings import load_settings
from shared.store import store_for

DAYS = 7
NOW = datetime(2001, 6, 1, 3, 17, tzinfo=UTC)


def retention(**more: str):
    return load_settings({"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                          "STATE_STORAGE": shared_azurite().connection_string,
                          "MESSAGE_RETENTION_DAYS": str(DAYS), **more})


def send_at(settings, caller: Caller, remote: str, at: datetime) -> None:
    """A send, kept as send_sms keeps it, at ``at``: its sender noted, then its item and
    delivery."""
    run(deliveries.note_sent(settings, caller.owner, FROM_NUMBER, remote, at))
    run(conversations.record_outgoing(
        settings, caller, FROM_NUMBER,
        {"sid": "SM" + secrets.token_hex(16), "to": remote, "from": FROM_NUMBER},
        "sent", [], at))


def reply_at(settings, remote: str, at: datetime) -> tuple[str, str]:
    """A reply from ``remote`` received at ``at``: its SID, and whose it became."""
    reply = sms("SM" + secrets.token_hex(16), "incoming", remote, FROM_NUMBER, "reply",
                    at=at)

    async def act():
        return await conversations.record_incoming(store_for(settings), settings, reply, None)
    return reply.sid, run(act())


def converse(settings, caller: Caller, remote: str, at: datetime) -> str:
    """The caller writes to ``remote`` and gets a reply, both at ``at``: a row in each table."""
    send_at(settings, caller, remote, at)
    sid, outcome = reply_at(settings, remote, at)
    assert outcome == "attributed"
    return sid


def left(settings, caller: Caller, remote: str, reply_sid: str) -> dict[str, int]:
    """What the store still holds of that conversation, table by table."""
    owner = threads.owner_key(caller.owner)

    async def act():
        store = store_for(settings)
        return {
            "messages": len(await threads.item_rows(store, caller.owner, remote)),
            "deliveries": len([row for row in await store.rows(
                conversations.CONVERSATIONS, owner, start=threads.DELIVERY, stop="delivery}")
                if row.fields["To"] == remote]),
            "conversations": len([row for row in await store.rows(conversations.CONVERSATIONS,
                                                                  owner)
                                  if row.key.endswith(f"|{remote}")]),  # summary, activity
            "contacts": len(await store.rows("contacts", remote)),
            "received": int(await store.get(conversations.RECEIVED, reply_sid, "received")
                            is not None),
        }
    return run(act())


KEPT = {"messages": 2, "deliveries": 1, "conversations": 2, "contacts": 1, "received": 1}
GONE = dict.fromkeys(KEPT, 0)


def test_the_purge_deletes_what_is_n_days_old_and_keeps_what_is_younger():
    settings = retention()
    caller = Caller(f"rita-{secrets.token_hex(4)}", "aad")
    ages = {"a second under": timedelta(days=DAYS) - timedelta(seconds=1),
            "exactly": timedelta(days=DAYS), "a day over": timedelta(days=DAYS + 1)}
    talks = {}
    for age, before in ages.items():
        remote = unique.number()
        talks[age] = (remote, converse(settings, caller, remote, NOW - before))

    shown = run(list_for(settings, caller, list_page({}), NOW))["conversations"]
    assert [c["number"] for c in shown] == [talks["a second under"][0]]

    run(purge_expired(settings, NOW))
    assert {age: left(settings, caller, *talk) for age, talk in talks.items()} == {
        "a second under": KEPT, "exactly": GONE, "a day over": GONE}


@pytest.mark.parametrize("attribution", ["last-sender", "recent-sender"])
def test_a_send_exactly_n_days_old_attributes_no_reply_a_second_younger_does(attribution):
    """What the purge deletes no longer claims replies: the send's ``contacts`` row."""
    settings = retention(SMS_REPLY_ATTRIBUTION=attribution,
                         SMS_REPLY_WINDOW_HOURS=str(24 * DAYS + 1))
    caller = Caller(f"sam-{secrets.token_hex(4)}", "aad")
    outcomes = []
    for before in (timedelta(days=DAYS), timedelta(days=DAYS) - timedelta(seconds=1)):
        remote = unique.number()
        send_at(settings, caller, remote, NOW - before)
        outcomes.append(reply_at(settings, remote, NOW)[1])
    assert outcomes == ["unattributed", "attributed"]
