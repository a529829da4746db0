"""Two instances racing on one row: every conditional write holds (real Table Storage, Azurite).

An instance here is a store client on an event loop of its own, as each app
instance has one. The race is made, not hoped for: the first conditional
write (replace, upsert or delete) the instance under test makes to the row
waits while another instance runs its whole request, on its own thread, loop
and client, to the end; then the write goes on, with what the instance read
before. Each test fails if that write ignores the ETag.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.functions as func
import pytest
import unique
from harness import APP_URL, FROM_NUMBER, invoke, refused, request
from storage import run
from test_idempotency import reserve_at
from test_two_way_sms import (  # noqa: F401 - on_azure: the autouse fixture
    ALICE,
    inbound_params,
    listing,
    mark_read,
    on_azure,
    receive,
    send,
    sent,
    thread_of,
    user,
)

from shared import conversations, idempotency, opt_outs
from shared.conversations import purge_expired
from shared.identity import ANONYMOUS, Caller
from shared.request_body import Payload
from shared.settings import load_settings
from shared.store import Row, Store

CONDITIONAL_WRITES = ("replace", "upsert", "delete")


def meanwhile(monkeypatch: pytest.MonkeyPatch, table: str, matches: Callable[[Row], bool],
              other_instance: Callable[[], Any]) -> list[Any]:
    """Make the next conditional write to a row of ``table`` that ``matches`` wait while
    ``other_instance()`` runs to the end on a thread (and so a loop and store) of its own.

    Returns what ``other_instance`` returned, once it ran: empty if it never did.
    """
    ran: list[Any] = []
    once = threading.Lock()  # taken by the first matching write, never given back

    for name in CONDITIONAL_WRITES:
        original = getattr(Store, name)

        async def write(self: Store, table_: str, row: Row, original: Any = original) -> Any:
            if table_ == table and matches(row) and once.acquire(blocking=False):
                ran.append(await asyncio.to_thread(other_instance))
            return await original(self, table_, row)

        monkeypatch.setattr(Store, name, write)

    original_transact = Store.transact

    async def transact(self: Store, table_: str, partition: str, ops: Any) -> Any:
        if (table_ == table and any(matches(row) for _, row in ops)
                and once.acquire(blocking=False)):
            ran.append(await asyncio.to_thread(other_instance))
        return await original_transact(self, table_, partition, ops)

    monkeypatch.setattr(Store, "transact", transact)
    return ran


def sms(body: dict[str, str], key: str):
    return invoke("send_sms", request("POST", f"{APP_URL}/send_sms", json_body=body,
                                      headers={idempotency.HEADER: key}))


# --- Idempotency-Key --------------------------------------------------------------------


def test_two_instances_taking_over_one_expired_key_send_once(app_env, monkeypatch):
    """Both read the expired reservation; the other takes it over and sends first: this
    one's takeover, made with what it read, must fail, and it replays the other's answer."""
    key, body = secrets.token_hex(16), {"to": unique.number(), "body": "once, after expiry"}
    reserve_at(key, datetime.now(UTC) - timedelta(hours=25), body)
    ran = meanwhile(monkeypatch, idempotency.TABLE, lambda row: True, lambda: sms(body, key))

    this = sms(body, key)
    [other] = ran
    assert other.status_code == this.status_code == 201, (other.get_body(), this.get_body())
    assert idempotency.REPLAYED not in other.headers
    assert this.headers[idempotency.REPLAYED] == "true"
    assert json.loads(this.get_body())["sid"] == json.loads(other.get_body())["sid"]
    assert [m["sid"] for m in app_env.messages if m["body"] == body["body"]] == [
        json.loads(other.get_body())["sid"]]


def test_releasing_a_key_never_deletes_the_answer_another_instance_kept(app_env, monkeypatch,
                                                                         caplog):
    """Twilio's 429 sent nothing, so this instance releases its reservation; meanwhile
    another instance (its clock a day ahead: the reservation expired there) took the key
    over and kept its answer. The release must leave that answer alone."""
    key, to = secrets.token_hex(16), unique.number()
    mine, theirs = {"to": to, "body": "refused by Twilio"}, {"to": to, "body": "sent elsewhere"}
    kept = json.dumps({"sid": "SM" + secrets.token_hex(16)})
    settings = load_settings()

    async def take_over() -> None:
        payload = Payload({name: [value] for name, value in theirs.items()})
        async with idempotency.first_attempt(settings, ANONYMOUS, key, "send_sms", payload,
                                             now=datetime.now(UTC) + timedelta(days=1)
                                             ) as attempt:
            await attempt.keep(func.HttpResponse(kept, status_code=201,
                                                 mimetype="application/json"))

    app_env.fault(kind="rate_limit", count=1)
    ran = meanwhile(monkeypatch, idempotency.TABLE, lambda row: True, lambda: run(take_over()))
    with caplog.at_level(logging.ERROR, "twilio_functions.idempotency"):
        refused(sms(mine, key), 429, "twilio-rate-limited")
    assert ran == [None]
    assert "idempotency=unreleased" in caplog.text

    replay = sms(theirs, key)  # the other instance's answer, kept
    assert (replay.status_code, replay.get_body().decode()) == (201, kept)
    assert replay.headers[idempotency.REPLAYED] == "true"
    refused(sms(mine, key), 422, "idempotency-key-reused")
    assert app_env.messages == []


# --- opt-outs ---------------------------------------------------------------------------


def test_a_start_never_deletes_a_stop_another_instance_wrote_meanwhile(app_env, monkeypatch):
    """START reads the opt-out, then deletes it; a second STOP, received by another
    instance in between, is the newer word: the texter stays opted out."""
    remote = unique.number()
    sent(remote, ALICE)
    receive(inbound_params(remote, "STOP"))
    ran = meanwhile(monkeypatch, opt_outs.TABLE, lambda row: row.key == remote,
                    lambda: receive(inbound_params(remote, "STOP")).status_code)

    assert receive(inbound_params(remote, "START")).status_code == 200
    assert ran == [200]
    before = len(app_env.messages)
    refused(send(remote, ALICE), 403, "recipient-opted-out")
    assert len(app_env.messages) == before


# --- conversations ----------------------------------------------------------------------


def test_the_purge_never_deletes_a_thread_another_instance_wrote_meanwhile(app_env,
                                                                           monkeypatch):
    """The purge reads a thread past the retention, then deletes it; the user writes to
    it on another instance in between: the thread, now current, stays.

    The purge runs in 2002 (its cutoff long before any other test's rows)."""
    monkeypatch.setenv("MESSAGE_RETENTION_DAYS", "7")
    settings = load_settings()
    remote, name = unique.number(), f"uma-{secrets.token_hex(4)}"
    purged_at = datetime(2002, 1, 1, tzinfo=UTC)
    run(conversations.record_outgoing(
        settings, Caller(name, "aad"), FROM_NUMBER,
        {"sid": "SM" + secrets.token_hex(16), "to": remote, "from": FROM_NUMBER},
        "ten days before the purge", [], purged_at - timedelta(days=10)))
    ran = meanwhile(monkeypatch, conversations.CONVERSATIONS,
                    lambda row: row.key == f"thread|{remote}",
                    lambda: sent(remote, user(name), body="written during the purge"))

    run(purge_expired(settings, purged_at))
    [sid] = ran
    [thread] = listing(user(name))["conversations"]
    assert (thread["number"], thread["last_item"]["sid"]) == (remote, sid)
    assert [m["sid"] for m in thread_of(remote, user(name))["items"]] == [sid]


def test_marking_read_leaves_a_message_that_arrived_during_the_mark_unread(app_env,
                                                                           monkeypatch):
    """Marking read up to the newest item sets unread to 0, unless a reply arrived (on
    another instance) between the count and that write: the reader has not seen it, so
    it stays unread."""
    name = f"vera-{secrets.token_hex(4)}"
    remote = unique.number()
    sent(remote, user(name))
    first = inbound_params(remote, "first reply")
    receive(first)
    late = inbound_params(remote, "arrives during the mark")
    ran = meanwhile(monkeypatch, conversations.CONVERSATIONS,
                    lambda row: row.key == f"thread|{remote}",
                    lambda: receive(late).status_code)

    assert mark_read(remote, user(name), first["MessageSid"])["unread"] == 1
    assert ran == [200]
    [thread] = listing(user(name))["conversations"]
    assert (thread["unread"], thread["last_item"]["sid"]) == (1, late["MessageSid"])
