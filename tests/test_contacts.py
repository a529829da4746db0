"""Contacts on real Table Storage (Azurite): ``route`` answers attribution and blocks with
one partition query, for SMS replies and incoming calls alike."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from harness import ACCOUNT_SID, AUTH_TOKEN
from storage import run, shared_azurite
from unique import number

from shared import contacts
from shared.contacts import Routing
from shared.settings import load_settings
from shared.store import Store, store_for

LINE, SERVICE = "+15005550006", "MG" + "a" * 32
NOW = datetime(2031, 6, 1, tzinfo=UTC)


def settings(**more: str):
    return load_settings({"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                          "STATE_STORAGE": shared_azurite().connection_string, **more})


def owner() -> str:
    return f"aad:{secrets.token_hex(6)}"


def routed(config, remote: str, *writes, fallback: str | None = None,
           service: str | None = None, monkeypatch=None) -> tuple[Routing, int]:
    queries: list[str] = []

    async def scenario() -> Routing:
        store = store_for(config)
        assert store is not None
        for write in writes:
            await write(store)
        original = Store.rows

        async def counted(self, *args, **kwargs):
            queries.append("rows")
            return await original(self, *args, **kwargs)
        monkeypatch.setattr(Store, "rows", counted)
        return await contacts.route(store, config, LINE, remote, NOW, fallback, service=service)
    return run(scenario()), len(queries)


def test_the_last_sender_on_the_line_owns_the_remote_in_one_query(monkeypatch):
    alice, bob, remote = owner(), owner(), number()
    routing, queries = routed(
        settings(), remote,
        lambda s: contacts.note_sent(s, LINE, remote, alice, NOW - timedelta(hours=2)),
        lambda s: contacts.note_sent(s, LINE, remote, bob, NOW - timedelta(hours=1)),
        lambda s: contacts.note_sent(s, "+15005550010", remote, alice, NOW),
        monkeypatch=monkeypatch)
    assert (routing, queries) == (Routing(bob, False, ""), 1)


def test_a_block_by_the_owner_shows_and_another_users_does_not(monkeypatch):
    alice, bob, remote = owner(), owner(), number()
    routing, _ = routed(
        settings(), remote,
        lambda s: contacts.note_sent(s, LINE, remote, alice, NOW - timedelta(hours=1)),
        lambda s: contacts.set_blocked(s, bob, remote, True, NOW),
        monkeypatch=monkeypatch)
    assert routing == Routing(alice, False, "")
    routing, _ = routed(settings(), remote,
                        lambda s: contacts.set_blocked(s, alice, remote, True, NOW),
                        monkeypatch=monkeypatch)
    assert routing.blocked


def test_nobody_falls_back_and_says_why(monkeypatch):
    fallback, remote = owner(), number()
    routing, _ = routed(settings(), remote, fallback=fallback, monkeypatch=monkeypatch)
    assert (routing.owner, routing.blocked) == (fallback, False)
    assert "nobody wrote" in routing.why


def test_recent_sender_counts_the_service_and_refuses_two_owners(monkeypatch):
    alice, bob, remote = owner(), owner(), number()
    config = settings(SMS_REPLY_ATTRIBUTION="recent-sender", SMS_REPLY_WINDOW_HOURS="24")
    routing, _ = routed(
        config, remote,
        lambda s: contacts.note_sent(s, SERVICE, remote, alice, NOW - timedelta(hours=1)),
        service=SERVICE, monkeypatch=monkeypatch)
    assert routing.owner == alice
    routing, _ = routed(
        config, remote,
        lambda s: contacts.note_sent(s, LINE, remote, bob, NOW - timedelta(hours=1)),
        service=SERVICE, monkeypatch=monkeypatch)
    assert (routing.owner, routing.why) == (
        None, "several users wrote to this sender from this number within "
        "SMS_REPLY_WINDOW_HOURS")
