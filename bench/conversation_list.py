"""What a page of the conversation list costs with 2,000 threads, beside with 1.

The list is one key range of ``limit + 1`` activity rows (docs/storage.md), so a page
of 20 should cost the same whatever the number of threads. Three owners on the
benchmark's Azurite: 2,000 threads, 21 (a full page and its ``next``) and 1; their
pages are read in turn, in-process (``shared.conversations.list_for``), and the p50s
compared. Against 1 thread the page itself is 20 times larger, so that row is shown;
against a full page the target holds the cost flat.
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime, timedelta

from bench import verdicts
from bench.verdicts import Limit, Row
from shared import store as store_module
from shared import threads
from shared.conversations import list_for, list_page
from shared.identity import Caller
from shared.settings import load_settings
from shared.store import Row as StoreRow
from shared.store import Store, store_for

THREADS = 2000
ROUNDS = 200
WARMUP = 20
#: A page with 2,000 threads may cost at most this many pages with one.
TARGET = Limit(1.5)
_PER_TRANSACTION = 50  # a summary and its activity row each: 100 operations


async def figures(env: dict[str, str]) -> list[Row]:
    settings = load_settings(env)
    store = store_for(settings)
    assert store is not None
    now = datetime.now(UTC)
    owners = {name: Caller(f"bench-{secrets.token_hex(4)}", "aad")
              for name in ("many", "page", "one")}
    try:
        for name, count in (("many", THREADS), ("page", 21), ("one", 1)):
            await fill(store, owners[name], count, now)
        page = list_page({"limit": "20"})
        samples: dict[str, list[float]] = {name: [] for name in owners}
        for round_ in range(WARMUP + ROUNDS):
            for name, caller in owners.items():
                started = time.perf_counter()
                await list_for(settings, caller, page, now)
                if round_ >= WARMUP:
                    samples[name].append(time.perf_counter() - started)
    finally:
        await store_module.close_stores()
    ours, full, one = (verdicts.percentile(samples[name], 50) for name in owners)
    detail = "one key range of limit+1 activity rows, one opt-out query per line"
    flat = verdicts.ratio_or_nan(ours, full)
    return [Row(f"conversation list p50, limit=20: {THREADS:,} threads vs 1 (Azurite)",
                verdicts.ms(ours), f"{verdicts.ms(one)} with 1 thread",
                verdicts.ratio_or_nan(ours, one), "shown", None, None, detail),
            Row(f"conversation list p50, limit=20: {THREADS:,} threads vs 21 (Azurite)",
                verdicts.ms(ours), f"{verdicts.ms(full)} with 21 threads", flat, str(TARGET),
                TARGET.holds(flat), None, detail)]


async def fill(store: Store, caller: Caller, count: int, now: datetime,
               lines: tuple[str, ...] = ("+15005550006",)) -> None:
    """``count`` threads as ``shared.threads`` keeps them: summaries and activity rows, a
    second apart, their lines taken in turn from ``lines`` (also for the list's test)."""
    owner = threads.owner_key(caller.owner)
    for first in range(0, count, _PER_TRANSACTION):
        ops: list = []
        for n in range(first, min(count, first + _PER_TRANSACTION)):
            at, remote = now - timedelta(seconds=n), f"+1415{n // 10_000:03d}{n % 10_000:04d}"
            fields = {"LastKind": "sms", "LastSid": "SM" + secrets.token_hex(16),
                      "LastDirection": "outgoing", "LastStatus": "", "LastBody": "hi",
                      "LastAt": at, "Line": lines[n % len(lines)], "Unread": 0,
                      "Blocked": False}
            key = threads.activity_key(at, remote)
            ops += [("insert", StoreRow(owner, f"thread|{remote}", {**fields, "Activity": key})),
                    ("insert", StoreRow(owner, key, {**fields, "Number": remote}))]
        await store.transact(threads.CONVERSATIONS, owner, ops)
