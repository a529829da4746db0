"""The worker's CPU per Table Storage operation, through the app's Store and alternatives.

A status callback's write and a send's transaction each cost about a millisecond of
the worker's CPU in azure-data-tables, azure-core and aiohttp (the cProfile of
status_callback): the floor under status_callback's CPU and under the CPU per send.
Here the operations a callback and a send make, a point read, a replace over the
ETag read and an entity-group transaction of four rows (a send's item, delivery,
thread summary over its ETag and activity row), run in this process against the
benchmark's Azurite through:

- the app's ``Store`` as it is (azure-data-tables, async, on aiohttp; its transactions'
  ``$batch`` body written and read by ``shared.table_batch``): the baseline;
- azure-data-tables' sync client (requests), called in the loop, and through
  ``asyncio.to_thread`` as an async worker would have to call it;
- ``bench.table_rest``: the REST API on aiohttp with Shared Key, nothing more;
- the ``Store`` over a leaner async client: no logging, tracing, user agent, request
  ID, proxy, redirect or custom-hook policies in its pipeline.

Each one's CPU (``time.process_time``: this process only, Azurite is another) over
``OPS`` operations of each kind, in rounds that rotate the order; the median round.
Only the client differs: each alternative gets the same rows and the Store's own
conversions (``shared.store``) where it is the SDK.
"""

from __future__ import annotations

import asyncio
import secrets
import statistics
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
from azure.core import MatchConditions
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableServiceClient, UpdateMode
from azure.data.tables.aio import TableServiceClient as AsyncTableServiceClient

from bench.table_rest import TableRest
from bench.verdicts import CALLBACK_THROUGHPUT, CPU_STORE, Row
from shared.settings import StorageConnection
from shared.store import _CLIENT_OPTIONS, Op, Store, _row, connect
from shared.store import Row as StoreRow

OPS = 200
ROUNDS = 5
WARMUP = 20
READ, REPLACE, TRANSACTION = "point read", "replace over ETag", "transaction of 4"
OPERATIONS = (READ, REPLACE, TRANSACTION)
STORE, SYNC, THREADED, REST, LEAN = "store", "sync", "threaded", "rest", "lean"
LABELS = {
    STORE: "the app's Store (azure-data-tables async)",
    SYNC: "azure-data-tables sync client, in the loop",
    THREADED: "azure-data-tables sync client via asyncio.to_thread",
    REST: "raw REST on aiohttp, Shared Key (bench/table_rest.py)",
    LEAN: "the Store on a lean async pipeline (no logging, tracing, hooks)",
}
#: What taking each alternative would cost the app beyond its CPU.
OWNING = {
    SYNC: "it blocks the worker's event loop for every round trip: unusable as is",
    THREADED: "a thread per call, concurrency capped by the thread pool",
    LEAN: "replacing the SDK's private policy list, and losing its request IDs and logs "
          "when a failure must be diagnosed",
    REST: "owning what azure-data-tables maintains: the Entra token path for the managed "
          "identity the deployment uses (azure-identity's token, its refresh, the Bearer "
          "header), retries and timeouts, error codes turned into Conflict and "
          "StoreUnavailable, entity types (nometadata answers carry none: every feature "
          "would declare its datetimes and Int64s), queries with continuation, and the REST "
          "API's versions",
}
#: An SDK alternative is worth taking when it cuts the Store's CPU to at most this.
WORTH = 0.8
#: Without status_callback's figures, the raw client is worth owning only if it
#: halves the Store's CPU.
REST_WORTH = 0.5
DATETIMES = ("Created", "Updated")
#: A send's rows: its item, its delivery, the thread's summary and its activity row.
ITEM, SUMMARY, ACTIVITY, CALLBACK = "item", "summary", "activity", "callback"

Cpu = Mapping[str, Mapping[str, float]]  # alternative -> operation -> CPU seconds


def fields(sequence: int) -> dict[str, Any]:
    """A delivery's properties, as ``shared.deliveries`` writes them."""
    now = datetime.now(UTC)
    return {"Kind": "sms", "Owner": "aad:bench", "To": "+14155552671", "Status": "sent",
            "Created": now, "Updated": now, "Sequence": sequence,
            "History": '[["queued", "2026-12-01T00:00:00+00:00", null]]', "Tokens": "[]"}


def _operation(action: str, row: StoreRow) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """One of the Store's transaction operations as ``submit_transaction`` takes it."""
    guarded = {"etag": row.etag, "match_condition": MatchConditions.IfNotModified}
    if action == "insert":
        return "create", row.entity(), {}
    if action == "upsert":
        return "upsert", row.entity(), {"mode": UpdateMode.REPLACE}
    if action == "replace":
        return "update", row.entity(), {"mode": UpdateMode.REPLACE, **guarded}
    unguarded = {"match_condition": MatchConditions.Unconditionally}
    return "delete", row.entity(), guarded if row.etag else unguarded


class SyncTables:
    """azure-data-tables' sync client, making the Store's calls with its conversions."""

    def __init__(self, connection_string: str) -> None:
        self._service = TableServiceClient.from_connection_string(connection_string,
                                                                  **_CLIENT_OPTIONS)
        self._clients: dict[str, Any] = {}

    def _table(self, table: str) -> Any:
        client = self._clients.get(table)
        if client is None:
            client = self._clients[table] = self._service.get_table_client(table)
        return client

    def get(self, table: str, partition: str, key: str) -> StoreRow | None:
        try:
            return _row(self._table(table).get_entity(partition, key))
        except ResourceNotFoundError:
            return None

    def replace(self, table: str, row: StoreRow) -> None:
        written = self._table(table).update_entity(
            row.entity(), mode=UpdateMode.REPLACE, etag=row.etag,
            match_condition=MatchConditions.IfNotModified)
        row.etag = written.get("etag")

    def transact(self, table: str, partition: str, ops: list[Op]) -> None:
        results = self._table(table).submit_transaction([_operation(a, r) for a, r in ops])
        for (action, row), result in zip(ops, results, strict=True):
            if action != "delete":
                row.etag = result.get("etag")

    def close(self) -> None:
        self._service.close()


class Awaited:
    """``SyncTables`` behind the Store's async methods: called in the loop, or on a thread."""

    def __init__(self, tables: SyncTables, threaded: bool) -> None:
        self._tables = tables
        self._threaded = threaded

    async def _call[T](self, method: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(method, *args) if self._threaded else method(*args)

    async def get(self, table: str, partition: str, key: str) -> StoreRow | None:
        return await self._call(self._tables.get, table, partition, key)

    async def replace(self, table: str, row: StoreRow) -> None:
        await self._call(self._tables.replace, table, row)

    async def transact(self, table: str, partition: str, ops: list[Op]) -> None:
        await self._call(self._tables.transact, table, partition, ops)


def lean_store(connection_string: str) -> Store:
    """The Store over an async client whose pipeline keeps only what a request needs:
    the storage headers, the signature, decoding, hosts and retries."""
    kept = ("StorageHeadersPolicy", "SharedKeyCredentialPolicy", "ContentDecodePolicy",
            "StorageHosts", "AsyncTablesRetryPolicy")
    client = AsyncTableServiceClient.from_connection_string(
        connection_string, logging_enable=False, **_CLIENT_OPTIONS)
    # Table clients are built from the service's own list (get_table_client).
    client._policies = [p for p in client._policies if type(p).__name__ in kept]
    return Store(client)


@dataclass
class Workload:
    """One alternative's rows in its own partition, and the three operations on them."""

    tables: Any  # the Store's get, replace and transact
    table: str
    partition: str
    callback: StoreRow | None = None
    summary: StoreRow | None = None
    sent: int = 0

    async def start(self) -> None:
        self.callback = await self.tables.get(self.table, self.partition, CALLBACK)
        self.summary = await self.tables.get(self.table, self.partition, SUMMARY)
        assert self.callback is not None and self.summary is not None, "rows seeded"

    async def read(self) -> None:
        if await self.tables.get(self.table, self.partition, CALLBACK) is None:
            raise RuntimeError("the callback's row is gone")

    async def replace(self) -> None:
        assert self.callback is not None
        self.callback.fields.update(Sequence=self.callback.fields["Sequence"] + 1,
                                    Updated=datetime.now(UTC))
        await self.tables.replace(self.table, self.callback)

    async def transact(self) -> None:
        assert self.summary is not None
        self.sent += 1
        self.summary.fields.update(Sequence=self.sent, Updated=datetime.now(UTC))
        ops: list[Op] = [
            ("upsert", StoreRow(self.partition, f"{ITEM}|{self.sent % 50}", fields(self.sent))),
            ("insert", StoreRow(self.partition, f"delivery|{self.sent:08d}", fields(0))),
            ("replace", self.summary),
            ("upsert", StoreRow(self.partition, ACTIVITY, fields(self.sent)))]
        await self.tables.transact(self.table, self.partition, ops)

    def operations(self) -> dict[str, Callable[[], Awaitable[None]]]:
        return {READ: self.read, REPLACE: self.replace, TRANSACTION: self.transact}


async def measure(connection_string: str) -> dict[str, dict[str, float]]:
    """CPU seconds per operation, by alternative: the median of ``ROUNDS`` rounds."""
    table = f"transport{secrets.token_hex(4)}"
    store = connect(StorageConnection("STATE_STORAGE", connection_string, None))
    sync = SyncTables(connection_string)
    lean = lean_store(connection_string)
    try:
        async with aiohttp.ClientSession() as session:
            clients = {STORE: store, SYNC: Awaited(sync, threaded=False),
                       THREADED: Awaited(sync, threaded=True),
                       REST: TableRest(connection_string, session, DATETIMES), LEAN: lean}
            work = {}
            for name, tables in clients.items():
                partition = f"{name}-{secrets.token_hex(4)}"
                await store.transact(table, partition, [
                    ("insert", StoreRow(partition, key, fields(0))) for key in (CALLBACK, SUMMARY)])
                work[name] = Workload(tables, table, partition)
                await work[name].start()
                for operation in work[name].operations().values():
                    for _ in range(WARMUP):
                        await operation()
            spent: dict[str, dict[str, list[float]]] = {
                name: {op: [] for op in OPERATIONS} for name in clients}
            names = list(clients)
            for round_ in range(ROUNDS):
                shift = round_ % len(names)
                for name in names[shift:] + names[:shift]:
                    for op, operation in work[name].operations().items():
                        started = time.process_time()
                        for _ in range(OPS):
                            await operation()
                        spent[name][op].append((time.process_time() - started) / OPS)
    finally:
        sync.close()
        await lean.close()
        await store.close()
    return {name: {op: statistics.median(samples) for op, samples in ops.items()}
            for name, ops in spent.items()}


def _us(cpu: Mapping[str, float]) -> str:
    return " / ".join(f"{cpu[op] * 1e6:.0f}" for op in OPERATIONS) + " µs"


def _mix(cpu: Mapping[str, float]) -> float:
    """One of each operation: a read, a replace and a transaction."""
    return sum(cpu[op] for op in OPERATIONS)


@dataclass(frozen=True)
class Served:
    """The host's CPU per request in the same run: what the store's cost is judged in."""

    callback: float  # status_callback
    twiml: float
    send_on: float  # send_sms, store on
    send_off: float  # send_sms, store off

    def projected(self, cpu: Cpu, name: str) -> tuple[float, float]:
        """status_callback's rate against twiml's, and the CPU per send against store off,
        were the Store's requests made by ``name``: the callback's one write saves what
        the replace saves; the store's share of a send (on minus off) scales by the ratio
        of one of each operation."""
        callback = self.callback - (cpu[STORE][REPLACE] - cpu[name][REPLACE])
        send = self.send_off + (self.send_on - self.send_off) * _mix(cpu[name]) / _mix(cpu[STORE])
        return self.twiml / callback, send / self.send_off


def rows(cpu: Cpu, served: Served | None = None) -> list[Row]:
    """A row per alternative against the Store, then the verdict."""
    base = cpu[STORE]
    found = [Row(f"Table Storage CPU per {' / '.join(OPERATIONS)}: {LABELS[name]}",
                 _us(cpu[name]), f"{_us(base)} {LABELS[STORE]}", _mix(cpu[name]) / _mix(base),
                 "shown", None, None,
                 None if n else (
                     f"this process's CPU (time.process_time; Azurite's is not in it) per "
                     f"operation against the benchmark's Azurite, {OPS} of each per round, "
                     f"median of {ROUNDS} rounds in rotating order; the ratio is on one of "
                     f"each (bench/table_transport.py)"))
             for n, name in enumerate(name for name in cpu if name != STORE)]
    return [*found, verdict(cpu, served)]


def verdict(cpu: Cpu, served: Served | None = None) -> Row:
    """Which client the measurement favours, and why: the measured gain beside what it
    costs to own. The app uses the Store (azure-data-tables) whatever this says: moving
    to another client is a change of its own, made on this evidence.

    An SDK alternative usable from an async worker (on a thread, or a leaner pipeline)
    is taken when it cuts the Store's CPU to ``WORTH`` or less. The raw client is worth
    owning only when it brings a target within reach (status_callback's rate, the CPU
    per send; projected from ``served``) that the SDK's best leaves missed, or, without
    those figures, when it halves the Store's CPU.
    """
    base = _mix(cpu[STORE])
    ratio = {name: _mix(ops) / base for name, ops in cpu.items()}
    usable = [name for name in (THREADED, LEAN) if name in cpu and ratio[name] <= WORTH]
    best_sdk = min(usable, key=ratio.__getitem__, default=STORE)
    rest = cpu[REST]
    gain = (f"the raw client saves {(cpu[STORE][REPLACE] - rest[REPLACE]) * 1e6:.0f} µs per "
            f"callback's write ({rest[REPLACE] / cpu[STORE][REPLACE]:.2f}x) and "
            f"{(cpu[STORE][TRANSACTION] - rest[TRANSACTION]) * 1e6:.0f} µs per send's "
            f"transaction ({rest[TRANSACTION] / cpu[STORE][TRANSACTION]:.2f}x)")
    if served is not None:
        def reaches(name: str) -> tuple[bool, bool]:
            callback, send = served.projected(cpu, name)
            return CALLBACK_THROUGHPUT.holds(callback), CPU_STORE.holds(send)

        callback, send = served.projected(cpu, REST)
        rest_worth = any(raw and not sdk
                         for raw, sdk in zip(reaches(REST), reaches(best_sdk), strict=True))
        gain += (f": status_callback at about {callback:.2f}x twiml's rate (target "
                 f"{CALLBACK_THROUGHPUT}), the CPU per send at about {send:.2f}x store off "
                 f"(target {CPU_STORE}), against {served.twiml / served.callback:.2f}x and "
                 f"{served.send_on / served.send_off:.2f}x now")
    else:
        rest_worth = ratio[REST] <= REST_WORTH and ratio[REST] < ratio[best_sdk]
    kept = REST if rest_worth else best_sdk
    if kept == REST:
        why = (f"{gain}: a target within reach that no SDK option reaches, for the price of "
               f"{OWNING[REST]}")
    elif kept == STORE:
        why = (f"no SDK alternative usable from the async worker cuts the CPU to {WORTH:g}x "
               f"({', '.join(f'{name} {ratio[name]:.2f}x' for name in (THREADED, LEAN))}); "
               f"{gain}: not worth {OWNING[REST]}")
    else:
        why = (f"{LABELS[kept]} cuts the CPU to {ratio[kept]:.2f}x at the cost of "
               f"{OWNING[kept]}; {gain}: not worth {OWNING[REST]}")
    if kept != STORE:
        why = f"not adopted yet, the app keeps azure-data-tables: {why}"
    return Row("Table Storage client the measurement favours", LABELS[kept],
               f"raw REST {ratio[REST]:.2f}x the Store's CPU", ratio[kept], "shown", None,
               None, why)


async def figures(connection_string: str, served: Served | None = None) -> list[Row]:
    return rows(await measure(connection_string), served)
