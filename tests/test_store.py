"""The store and the deliveries kept in it, on real Table Storage (Azurite).

Two ``Store`` objects on one Azurite are two instances of the app: each has
its own client and connection pool, as on Azure, so their conflicting writes
meet at the storage service's ETag check, not in a Python lock.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from datetime import UTC, datetime, timedelta

import pytest
from harness import ACCOUNT_SID, AUTH_TOKEN
from storage import run, shared_azurite

from shared import store as store_module
from shared.deliveries import TABLE, _record, find, record_report, remember_sent, row_key
from shared.delivery_status import StatusReport
from shared.identity import ANONYMOUS, Caller
from shared.problems import Problem
from shared.settings import StorageConnection, load_settings
from shared.store import Conflict, Row, Store, StoreUnavailable, connect
from shared.threads import owner_key

ALICE = Caller("alice", "aad")
#: The owner's key the StatusCallback URL names (``deliveries.status_callback_url``).
OF_ALICE = owner_key(ALICE.owner)
BASE = {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN}


def settings_on(connection_string: str):
    return load_settings({**BASE, "STATE_STORAGE": connection_string})


def sid(prefix: str = "SM") -> str:
    return prefix + secrets.token_hex(16)


def report(sid_: str, status: str, *, kind: str = "sms", sequence: int | None = None,
           token: str | None = None, **extra) -> StatusReport:
    return StatusReport(sid_, kind, status, datetime.now(UTC), sequence=sequence,
                        token=token or secrets.token_hex(8), **extra)


@pytest.fixture(scope="module")
def settings():
    return settings_on(shared_azurite().connection_string)


def instances(count: int) -> list[Store]:
    return [connect(StorageConnection("STATE_STORAGE", shared_azurite().connection_string,
                                      None)) for _ in range(count)]


# --- the store's primitives ------------------------------------------------------


def test_insert_is_insert_if_absent_and_replace_checks_the_etag():
    async def scenario():
        first, second = instances(2)
        try:
            key = sid()
            assert await first.insert("primitives", Row(key, "r", {"N": 1}))
            assert not await second.insert("primitives", Row(key, "r", {"N": 2}))
            read_by_first = await first.get("primitives", key, "r")
            read_by_second = await second.get("primitives", key, "r")
            assert read_by_first.fields["N"] == 1 and read_by_first.etag
            read_by_first.fields["N"] = 10
            await first.replace("primitives", read_by_first)
            read_by_second.fields["N"] = 20
            with pytest.raises(Conflict):  # stale ETag: the second instance must reread
                await second.replace("primitives", read_by_second)
            assert (await second.get("primitives", key, "r")).fields["N"] == 10
            assert await first.get("primitives", key, "other") is None
        finally:
            await first.close()
            await second.close()
    asyncio.run(scenario())


# --- deliveries ----------------------------------------------------------------


def test_a_message_is_recorded_then_moves_forward_and_never_back(settings):
    key = sid()

    async def scenario():
        await remember_sent(settings, ALICE, "sms", {"sid": key, "to": "+14155552671",
                                                      "status": "queued"})
        outcomes = [await record_report(settings, report(key, status), OF_ALICE)
                    for status in ("delivered", "sent")]
        return outcomes, await find(settings, ALICE, key)

    outcomes, delivery = run(scenario())
    assert outcomes == ["recorded", "recorded"]  # the late `sent` is kept in the history
    view = delivery.view()
    assert view["status"] == "delivered" and view["kind"] == "sms"
    assert view["to"] == "+14155552671"
    assert [event["status"] for event in view["history"]] == ["queued", "delivered", "sent"]
    assert view["created"] <= view["updated"]


def test_duplicates_are_recorded_once_by_token_and_by_status(settings):
    key = sid()

    async def scenario():
        await remember_sent(settings, ANONYMOUS, "sms", {"sid": key, "to": "+14155552671",
                                                          "status": "queued"})
        sent = report(key, "sent", token="token-1")
        return [await record_report(settings, r, owner_key(ANONYMOUS.owner)) for r in (
            sent, sent,  # Twilio's retry: same token
            report(key, "sent", token="token-2"),  # same status, another token
            report(key, "undelivered", error_code=30003),
        )], await find(settings, ANONYMOUS, key)

    outcomes, delivery = run(scenario())
    assert outcomes == ["recorded", "duplicate", "duplicate", "recorded"]
    view = delivery.view()
    assert [event["status"] for event in view["history"]] == ["queued", "sent", "undelivered"]
    assert (view["status"], view["error_code"]) == ("undelivered", 30003)
    assert view["more_info"] == "https://www.twilio.com/docs/errors/30003"


def test_a_call_follows_its_sequence_numbers_and_keeps_its_duration(settings):
    key = sid("CA")

    async def scenario():
        await remember_sent(settings, ALICE, "call", {"sid": key, "to": "+14155552671",
                                                       "status": "queued"})
        for status, sequence in (("ringing", 1), ("completed", 3), ("in-progress", 2),
                                 ("initiated", 0)):
            extra = {"duration": 42} if status == "completed" else {}
            await record_report(settings, report(key, status, kind="call", sequence=sequence,
                                                 **extra), OF_ALICE)
        return await find(settings, ALICE, key)

    view = run(scenario()).view()
    assert (view["status"], view["duration"]) == ("completed", 42)
    assert [e["status"] for e in view["history"]] == [
        "queued", "initiated", "ringing", "in-progress", "completed"]


def test_an_unknown_sid_is_acknowledged_and_not_stored(settings):
    key = sid()

    async def scenario():
        outcome = await record_report(settings, report(key, "delivered"), OF_ALICE)
        return outcome, await store_module.store_for(settings).get(TABLE, OF_ALICE,
                                                                   row_key(key))

    assert run(scenario()) == ("unknown", None)


def test_another_owners_delivery_is_not_found(settings):
    key = sid()

    async def scenario():
        await remember_sent(settings, ALICE, "sms", {"sid": key, "to": "+14155552671",
                                                      "status": "queued"})
        for caller in (Caller("bob", "aad"), Caller("alice", "google"), ANONYMOUS):
            with pytest.raises(Problem) as refused:
                await find(settings, caller, key)
            assert refused.value.status == 404
        with pytest.raises(Problem) as unknown:
            await find(settings, ALICE, sid())
        assert unknown.value.detail.startswith("no message or call")

    run(scenario())


def test_concurrent_callbacks_on_two_instances_lose_nothing(settings):
    """Every report of one call, twice each and shuffled, from two instances at once."""
    key = sid("CA")
    statuses = ["initiated", "ringing", "in-progress", "completed"]

    async def scenario():
        first, second = instances(2)
        try:
            await remember_sent(settings, ALICE, "call", {"sid": key, "to": "+14155552671",
                                                           "status": "queued"})
            reports = [report(key, status, kind="call", sequence=n, token=f"t{n}",
                              **({"duration": 7} if status == "completed" else {}))
                       for n, status in enumerate(statuses)]
            shuffled = [r for pair in zip(reversed(reports), reports, strict=True) for r in pair]
            jobs = [_record(store, r)
                    for store in (first, second) for r in shuffled]
            outcomes = await asyncio.gather(*jobs)
            return outcomes, await find(settings, ALICE, key)
        finally:
            await first.close()
            await second.close()

    outcomes, delivery = run(scenario())
    assert outcomes.count("recorded") == len(statuses)  # each report once, whoever won
    assert outcomes.count("duplicate") == 4 * len(statuses) - len(statuses)
    view = delivery.view()
    assert (view["status"], view["duration"]) == ("completed", 7)
    assert [e["status"] for e in view["history"]] == ["queued", *statuses]


# --- when the store is down ------------------------------------------------------


def dead_store_settings():
    """A connection string to a port nothing listens on."""
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return settings_on(shared_azurite().connection_string.replace(
        str(shared_azurite().port), str(port)))


def test_a_dead_store_is_unavailable_quickly_never_an_error():
    settings = dead_store_settings()
    key = sid()

    async def scenario():
        started = asyncio.get_running_loop().time()
        with pytest.raises(StoreUnavailable):
            await store_module.store_for(settings).get(TABLE, OF_ALICE, row_key(key))
        with pytest.raises(Problem) as callback:
            await record_report(settings, report(key, "sent"), OF_ALICE)
        with pytest.raises(Problem) as status:
            await find(settings, ALICE, key)
        return asyncio.get_running_loop().time() - started, callback.value, status.value

    elapsed, callback, status = run(scenario())
    assert elapsed < 3 * store_module.STORE_TIMEOUT
    for problem in (callback, status):
        assert (problem.status, problem.type) == (
            503, "urn:twilio-functions:problem:store-unavailable")
        assert problem.headers["Retry-After"] == str(store_module.RETRY_AFTER)


def test_a_send_the_store_missed_is_logged_with_its_sid(caplog):
    settings = dead_store_settings()
    key = sid()
    with caplog.at_level(logging.ERROR, logger="twilio_functions"):
        run(remember_sent(settings, ALICE, "sms", {"sid": key, "to": "+14155552671",
                                                   "status": "queued"}))
    [line] = [r.getMessage() for r in caplog.records if key in r.getMessage()]
    assert "store=unavailable" in line and "+14155552671" not in line


def test_identity_based_connection_uses_the_user_assigned_identity():
    client_id = "0f8fad5b-d9cb-469f-a165-70867728950e"
    settings = load_settings({**BASE, "AzureWebJobsStorage__tableServiceUri":
                              "https://acct.table.core.windows.net",
                              "AzureWebJobsStorage__clientId": client_id})

    async def scenario():
        store = store_module.connect(settings.state_connection)
        try:
            credential = store._credential
            # What the identity endpoint will be asked for: this identity's token.
            asked = credential._credential._client._identity_config
            return type(credential).__name__, store._client.url, asked
        finally:
            await store.close()

    name, url, asked = asyncio.run(scenario())
    assert name == "ManagedIdentityCredential" and asked == {"client_id": client_id}
    assert url.startswith("https://acct.table.core.windows.net")


def test_history_keeps_the_time_each_event_happened(settings):
    key = sid("CA")
    happened = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)

    async def scenario():
        await remember_sent(settings, ALICE, "call", {"sid": key, "to": "+14155552671",
                                                       "status": "queued"})
        await record_report(settings, StatusReport(key, "call", "initiated", happened,
                                                   sequence=0, token="x"))
        return await find(settings, ALICE, key)

    view = run(scenario()).view()
    assert view["history"][1]["at"] == happened.isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")
