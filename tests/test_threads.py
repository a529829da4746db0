"""Threads on real Table Storage (Azurite): items of every kind, the summary and activity
rows that move with them, locators, and the store's transactions they rest on.

Two ``Store`` objects on one Azurite are two instances of the app: their conflicting
writes meet at the storage service's ETag check.
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta

import pytest
from storage import run, shared_azurite
from unique import number

from shared import threads
from shared.settings import StorageConnection
from shared.store import Conflict, Row, Store, StoreUnavailable, connect
from shared.threads import Item

LINE = "+15005550006"
NOON = datetime(2031, 5, 1, 12, tzinfo=UTC)


def instances(count: int) -> list[Store]:
    return [connect(StorageConnection("STATE_STORAGE", shared_azurite().connection_string,
                                      None)) for _ in range(count)]


def owner() -> str:
    return f"aad:{secrets.token_hex(6)}"


def sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def sms(remote: str, at: datetime, direction: str = "incoming", body: str = "hi") -> Item:
    return Item(sid("SM"), "sms", direction, remote, LINE, at, body=body)  # type: ignore[arg-type]


def call(remote: str, at: datetime, status: str = "missed") -> Item:
    return Item(sid("CA"), "call", "incoming", remote, LINE, at, status=status)


async def summary_and_activity(store: Store, who: str, remote: str) -> tuple[Row | None, list[Row]]:
    key = threads.owner_key(who)
    row = await store.get(threads.CONVERSATIONS, key, f"thread|{remote}")
    activity = [each for each in await store.rows(threads.CONVERSATIONS, key, start="activity|",
                                                  stop="activity}")
                if each.fields["Number"] == remote]
    return row, activity


# --- the store's transactions -----------------------------------------------------------


def test_a_transaction_applies_all_its_operations_or_none():
    async def scenario():
        [store] = instances(1)
        partition = f"p{secrets.token_hex(6)}"
        first = Row(partition, "a", {"N": 1})
        await store.transact("transactions", partition, [("insert", first),
                                                          ("insert", Row(partition, "b"))])
        stale = Row(partition, "a", {"N": 2}, etag=first.etag)
        await store.replace("transactions", Row(partition, "a", {"N": 3}, etag=first.etag))
        with pytest.raises(Conflict):  # the replace's ETag is stale: the insert of c fails too
            await store.transact("transactions", partition, [("insert", Row(partition, "c")),
                                                              ("replace", stale)])
        keys = [row.key for row in await store.rows("transactions", partition)]
        with pytest.raises(Conflict):  # deleting a row that is not there fails it all
            await store.transact("transactions", partition, [("delete", Row(partition, "z"))])
        found = await store.rows_keyed("transactions", partition, ["b", "c", "a", "q"])
        await store.close()
        return keys, [row.key for row in found]
    assert run(scenario()) == (["a", "b"], ["a", "b"])


def test_a_filtered_query_finds_many_keys_beyond_fifteen_comparisons():
    async def scenario():
        [store] = instances(1)
        partition = f"p{secrets.token_hex(6)}"
        for n in range(0, 40, 2):
            await store.insert("transactions", Row(partition, f"k{n:02d}"))
        found = await store.rows_keyed("transactions", partition,
                                       [f"k{n:02d}" for n in range(40)])
        await store.close()
        return [row.key for row in found]
    assert run(scenario()) == [f"k{n:02d}" for n in range(0, 40, 2)]


# --- keep ---------------------------------------------------------------------------------


def test_keep_moves_summary_and_activity_to_the_newest_item_and_counts_unread():
    who, remote = owner(), number()

    async def scenario():
        [store] = instances(1)
        first = sms(remote, NOON)
        older = call(remote, NOON - timedelta(hours=1))
        newest = call(remote, NOON + timedelta(hours=1))
        kept = [await threads.keep(store, who, first, unread=True),
                await threads.keep(store, who, older, unread=True),
                await threads.keep(store, who, newest, unread=False)]
        row, activity = await summary_and_activity(store, who, remote)
        await store.close()
        return kept, row, activity, newest
    kept, row, activity, newest = run(scenario())
    assert kept == [True, True, True]
    assert row is not None
    assert (row.fields["LastSid"], row.fields["LastKind"], row.fields["LastStatus"],
            row.fields["Unread"]) == (newest.sid, "call", "missed", 2)
    [only] = activity  # the old activity rows went in the transactions that moved it
    assert only.key == row.fields["Activity"] == threads.activity_key(newest.at, remote)
    assert (only.fields["LastSid"], only.fields["Unread"]) == (newest.sid, 2)


def test_a_retried_webhook_keeps_its_item_once():
    who, remote = owner(), number()

    async def scenario():
        [store] = instances(1)
        item = call(remote, NOON)
        again = Item(item.sid, "call", "incoming", remote, LINE, NOON + timedelta(seconds=3),
                     status="missed")
        kept = [await threads.keep(store, who, item, unread=True),
                await threads.keep(store, who, again, unread=True)]
        rows = await threads.item_rows(store, who, remote)
        row, _ = await summary_and_activity(store, who, remote)
        await store.close()
        return kept, len(rows), row.fields["Unread"] if row else None
    assert run(scenario()) == ([True, False], 1, 1)


def test_items_arriving_at_once_from_two_instances_all_count():
    who, remote = owner(), number()

    async def scenario():
        stores = instances(2)
        items = [sms(remote, NOON + timedelta(seconds=n)) for n in range(30)]
        await asyncio.gather(*(threads.keep(stores[n % 2], who, item, unread=True)
                               for n, item in enumerate(items)))
        row, activity = await summary_and_activity(stores[0], who, remote)
        for store in stores:
            await store.close()
        return row, activity, items[-1]
    row, activity, newest = run(scenario())
    assert row is not None and row.fields["Unread"] == 30
    assert row.fields["LastSid"] == newest.sid  # the summary never goes back to an older one
    assert [each.key for each in activity] == [row.fields["Activity"]]


# --- update and find ------------------------------------------------------------------------


def test_update_merges_into_the_item_and_the_summary_when_it_is_the_last():
    who, remote = owner(), number()

    async def scenario():
        [store] = instances(1)
        placed = Item(sid("CA"), "call", "outgoing", remote, LINE, NOON, status="queued")
        voicemail = Item(sid("RE"), "voicemail", "incoming", remote, LINE,
                         NOON - timedelta(minutes=1), duration=7, call_sid=sid("CA"))
        await threads.keep(store, who, placed, unread=False)
        await threads.keep(store, who, voicemail, unread=True)
        updated = [await threads.update(store, placed.sid, {"status": "completed",
                                                            "duration": 42}),
                   await threads.update(store, voicemail.sid, {
                       "transcription": "call me", "transcription_status": "completed"}),
                   await threads.update(store, sid("CA"), {"status": "completed"})]
        found = (await threads.find(store, who, placed.sid),
                 await threads.find(store, who, voicemail.sid),
                 await threads.find(store, owner(), placed.sid))
        row, activity = await summary_and_activity(store, who, remote)
        await store.close()
        return updated, found, row, activity
    updated, (call_item, voicemail_item, strangers), row, activity = run(scenario())
    assert updated == [True, True, False]
    assert call_item is not None and (call_item.status, call_item.duration) == ("completed", 42)
    assert voicemail_item is not None
    assert (voicemail_item.transcription, voicemail_item.transcription_status,
            voicemail_item.duration) == ("call me", "completed", 7)
    assert strangers is None  # another owner's SID is nobody's
    assert row is not None and row.fields["LastStatus"] == "completed"
    assert [each.fields["LastStatus"] for each in activity] == ["completed"]


def test_update_refuses_what_an_item_cannot_change():
    with pytest.raises(ValueError, match="body"):
        run(threads.update(instances(1)[0], sid("CA"), {"body": "x"}))


# --- what a summary write meets: a failure, a deletion, a read, a block -------------------


def before_first_summary(store: Store, meanwhile) -> None:
    """Run ``meanwhile()`` once, just before ``store``'s first transaction on
    ``conversations`` (the summary's write): another instance's work lands in between."""
    transact, ran = store.transact, []

    async def transact_after(table, partition, ops):
        if table == threads.CONVERSATIONS and not ran:
            ran.append(True)
            await meanwhile()
        return await transact(table, partition, ops)
    store.transact = transact_after  # type: ignore[method-assign]


def test_a_retried_webhook_writes_the_summary_its_first_try_could_not():
    """The item was kept, the summary's write failed (503 to Twilio, which retries): the
    retry writes the summary and counts the item unread once; a third try changes nothing."""
    who, remote = owner(), number()
    [store] = instances(1)
    item = call(remote, NOON)

    async def cut_short():
        raise StoreUnavailable("the summary's write failed")
    before_first_summary(store, cut_short)

    async def scenario():
        with pytest.raises(StoreUnavailable):
            await threads.keep(store, who, item, unread=True)
        after_failure = await threads.summary(store, who, remote)
        retried = [await threads.keep(store, who, item, unread=True) for _ in range(2)]
        return after_failure, retried, await threads.summary(store, who, remote)

    after_failure, retried, summary = run(scenario())
    assert after_failure is None
    assert retried == [True, False]
    assert (summary.last_sid, summary.unread) == (item.sid, 1)


def test_a_thread_deleted_while_its_first_item_is_kept_leaves_no_summary():
    who, remote = owner(), number()
    keeping, deleting = instances(2)
    item = sms(remote, NOON)
    before_first_summary(keeping, lambda: threads.delete(deleting, who, remote))

    async def scenario():
        await threads.keep(keeping, who, item, unread=True)
        return (await summary_and_activity(keeping, who, remote),
                await threads.find(keeping, who, item.sid))

    (row, activity), found = run(scenario())
    assert (row, activity, found) == (None, [], None)


def test_a_block_set_while_a_first_item_is_kept_marks_the_new_thread():
    who, remote = owner(), number()
    keeping, blocking = instances(2)
    before_first_summary(keeping, lambda: threads.block(blocking, who, remote, True, NOON))

    async def scenario():
        await threads.keep(keeping, who, sms(remote, NOON), unread=True)
        return await summary_and_activity(keeping, who, remote)

    row, [activity] = run(scenario())
    assert row.fields["Blocked"] is True and activity.fields["Blocked"] is True


def test_reading_up_to_an_older_item_unreads_nothing():
    """A device that has not caught up reads up to an item another one read past."""
    who, remote = owner(), number()
    [store] = instances(1)
    first, second, third = (sms(remote, NOON + timedelta(minutes=n)) for n in range(3))

    async def scenario():
        for item in (first, second, third):
            await threads.keep(store, who, item, unread=True)
        stop = NOON - timedelta(days=1)
        newest = await threads.mark_read(store, who, remote, third.sid, stop)
        stale = await threads.mark_read(store, who, remote, first.sid, stop)
        return newest, stale, await threads.summary(store, who, remote)

    newest, stale, summary = run(scenario())
    assert (newest, stale, summary.unread) == (0, 0, 0)


def test_reading_up_to_an_item_whose_summary_is_on_its_way_leaves_it_read():
    """The item is kept, its summary's write not yet done when another instance reads up to
    it: its pending count must not land after the read."""
    who, remote = owner(), number()
    keeping, reading = instances(2)
    earlier, later = sms(remote, NOON), sms(remote, NOON + timedelta(minutes=1))
    read: list[int | None] = []

    async def read_later():
        read.append(await threads.mark_read(reading, who, remote, later.sid,
                                            NOON - timedelta(days=1)))

    async def scenario():
        await threads.keep(keeping, who, earlier, unread=True)
        before_first_summary(keeping, read_later)
        await threads.keep(keeping, who, later, unread=True)
        return await threads.summary(keeping, who, remote)

    summary = run(scenario())
    assert read == [0]
    assert (summary.last_sid, summary.unread) == (later.sid, 0)
