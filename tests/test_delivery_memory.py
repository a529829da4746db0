"""Callbacks cost one write where the instance remembers the delivery row's ETag.

Each instance keeps the delivery rows it last wrote (the send's transaction, its last
callback): a callback that reaches it again is one store call, counted here by wrapping
the store's methods. Memory never decides what the row says: when another instance wrote
since, the remembered ETag fails, the row is read again and the report applied to it, so
a status never goes back.
"""

from __future__ import annotations

import secrets
from collections import Counter
from datetime import UTC, datetime

from harness import ACCOUNT_SID, AUTH_TOKEN
from storage import run, shared_azurite

from shared.deliveries import _record, find, record_report, remember_sent
from shared.delivery_status import StatusReport
from shared.identity import Caller
from shared.settings import StorageConnection, load_settings
from shared.store import Store, connect, store_for
from shared.threads import owner_key

CALLS = ("get", "insert", "replace", "delete", "upsert", "rows", "rows_keyed", "transact")


def counted(store: Store) -> Counter[str]:
    """Count every call the app makes on ``store`` from now on, by method."""
    seen: Counter[str] = Counter()
    for name in CALLS:
        method = getattr(store, name)

        async def call(*args, _method=method, _name=name, **kwargs):
            seen[_name] += 1
            return await _method(*args, **kwargs)
        setattr(store, name, call)
    return seen


def settings():
    return load_settings({"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                          "STATE_STORAGE": shared_azurite().connection_string})


def report(sid: str, status: str) -> StatusReport:
    return StatusReport(sid, "sms", status, datetime.now(UTC), token=secrets.token_hex(8))


def caller() -> Caller:
    return Caller(f"memory-{secrets.token_hex(6)}", "aad")


def test_callbacks_on_the_instance_that_sent_are_one_write_each():
    app, owner = settings(), caller()
    sid = "SM" + secrets.token_hex(16)

    async def scenario():
        await remember_sent(app, owner, "sms", {"sid": sid, "to": "+14155552671",
                                                "status": "queued"})
        seen = counted(store_for(app))
        outcomes, per_callback = [], []
        for status in ("sent", "delivered"):
            before = seen.total()
            outcomes.append(await record_report(app, report(sid, status),
                                                owner_key(owner.owner)))
            per_callback.append(seen.total() - before)
        return outcomes, per_callback, dict(seen), (await find(app, owner, sid)).view()

    outcomes, per_callback, seen, view = run(scenario())
    assert outcomes == ["recorded", "recorded"]
    assert per_callback == [1, 1] and seen == {"replace": 2}  # no read before either
    assert view["status"] == "delivered"
    assert [event["status"] for event in view["history"]] == ["queued", "sent", "delivered"]


def test_a_row_another_instance_wrote_since_is_read_again_and_never_goes_back():
    app, owner = settings(), caller()
    sid = "SM" + secrets.token_hex(16)

    async def scenario():
        other = connect(StorageConnection("STATE_STORAGE", shared_azurite().connection_string,
                                          None))
        try:
            await remember_sent(app, owner, "sms", {"sid": sid, "to": "+14155552671",
                                                    "status": "queued"})
            # The other instance takes `delivered`; this one still remembers `queued`.
            assert await _record(other, report(sid, "delivered"),
                                 partition=owner_key(owner.owner)) == "recorded"
            seen = counted(store_for(app))
            late = await record_report(app, report(sid, "sent"), owner_key(owner.owner))
            after_reading = seen.total()
            again = await record_report(app, report(sid, "read"), owner_key(owner.owner))
            return late, after_reading, again, dict(seen), (await find(app, owner, sid)).view()
        finally:
            await other.close()

    late, after_reading, again, seen, view = run(scenario())
    assert late == "recorded" and after_reading == 3  # a failed write, a read, a write
    assert again == "recorded" and seen == {"replace": 3, "get": 1}  # then one write again
    assert view["status"] == "read"  # the late `sent` did not take `delivered` back
    assert [event["status"] for event in view["history"]] == [
        "queued", "delivered", "sent", "read"]
