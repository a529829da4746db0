"""The app's only door to Azure Table Storage (``azure-data-tables``, async).

Every instance of the app shares one storage account, so state kept here
holds across instances: reads return the row's ETag, and ``replace`` writes
only if nobody changed the row since (optimistic concurrency), so two
instances updating one row never lose a write. The functions never see rows:
the modules of each feature (``shared.deliveries``) turn them into their own
types.

The connection follows Azure Functions' conventions (``shared.settings``):
a connection string, or a table service URI reached with a managed identity
through ``azure-identity``. Anything that goes wrong reaching the store is
raised as ``StoreUnavailable``, bounded by ``STORE_TIMEOUT`` seconds, so a
caller can answer 503 (or carry on without the store) instead of failing.

A transaction (``transact``) is one ``$batch`` request whose body ``shared.table_batch``
writes and whose answer it reads, sent through the table client's own pipeline (its
credential, retries and timeouts): the SDK's ``submit_transaction`` built each operation
as a whole request and cost a send several times what its other store calls do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote

from azure.core import AsyncPipelineClient, MatchConditions
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.core.rest import AsyncHttpResponse, HttpRequest
from azure.data.tables import TableErrorCode, UpdateMode
from azure.data.tables._serialize import _add_entity_properties
from azure.data.tables.aio import TableClient, TableServiceClient

from shared import table_batch
from shared.per_loop import PerLoop
from shared.settings import Settings, StorageConnection

logger = logging.getLogger("twilio_functions.store")
# azure-core logs every request and response at INFO (headers redacted); kept at
# WARNING so Application Insights gets one outcome line per request.
logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)

#: Longest a store operation may take, retries included, before it counts as down.
STORE_TIMEOUT = 5.0
#: What a client told "store unavailable" should wait before retrying, in seconds.
RETRY_AFTER = 5
# One quick retry: Table Storage answers in milliseconds, and a caller waiting
# on a dead store should hear it within STORE_TIMEOUT, not after azure-core's
# default of ten retries with backoff.
_CLIENT_OPTIONS: dict[str, Any] = {
    "retry_total": 1, "retry_backoff_factor": 0.1, "connection_timeout": 2, "read_timeout": 4,
    # No proxy or netrc lookups: aiohttp makes them in a thread, twice per request.
    "use_env_settings": False,
}


#: Most operations one entity-group transaction may hold (Table Storage's limit).
MAX_TRANSACTION = 100
#: RowKeys one filtered query asks for: Table Storage allows 15 comparisons in a
#: ``$filter``, and the PartitionKey takes one.
MAX_KEYS_PER_QUERY = 14
#: What a transaction does to one row: ``insert`` (fails if it exists), ``replace``
#: (only over the ETag read), ``upsert`` (whatever is there), ``delete`` (over the
#: ETag read, or whatever is there when the row has none; the row must exist).
Op = tuple[Literal["insert", "replace", "upsert", "delete"], "Row"]
#: The ``$batch`` request's own headers, as azure-data-tables sends them (``x-ms-version``
#: is the client's API version; the pipeline adds the date and the authorization).
_BATCH_HEADERS = {"DataServiceVersion": "3.0", "MaxDataServiceVersion": "3.0;NetFx",
                  "Accept": "application/json"}
_CONFLICTS = {TableErrorCode.ENTITY_ALREADY_EXISTS, TableErrorCode.UPDATE_CONDITION_NOT_SATISFIED,
              TableErrorCode.RESOURCE_NOT_FOUND, TableErrorCode.ENTITY_NOT_FOUND}


class StoreUnavailable(Exception):
    """The store could not be reached, timed out or failed: the request may be retried."""


class Conflict(Exception):
    """The row changed since it was read (its ETag no longer matches): read it again."""


@dataclass
class Row:
    """One table row: its keys, its properties and, once read, its ETag."""

    partition: str
    key: str
    fields: dict[str, Any] = field(default_factory=dict)
    etag: str | None = None

    def entity(self) -> dict[str, Any]:
        return {**self.fields, "PartitionKey": self.partition, "RowKey": self.key}


class Store:
    """Rows in the tables of one storage account; tables are created on first use."""

    def __init__(self, client: TableServiceClient, credential: Any = None) -> None:
        self._client = client
        self._credential = credential
        # The account's endpoint (the URL without a SAS, which the credential policy adds):
        # where a transaction's parts point and its $batch goes.
        self._endpoint = client.url.partition("?")[0].rstrip("/")
        self._tables: dict[str, asyncio.Future[None]] = {}
        # One client per table, made once: making one builds a whole request
        # pipeline, which cost as much CPU as the request itself. They share
        # the service client's connections.
        self._table_clients: dict[str, TableClient] = {}

    async def get(self, table: str, partition: str, key: str) -> Row | None:
        """The row with these keys, with its ETag; None if there is none."""
        async def read(client: TableClient) -> Row | None:
            try:
                return _row(await client.get_entity(partition, key))
            except ResourceNotFoundError as error:
                if _table_missing(error):
                    raise
                return None
        return await self._using(table, read)

    async def insert(self, table: str, row: Row) -> bool:
        """Add the row if no row has its keys (atomically); False if one already does."""
        async def add(client: TableClient) -> bool:
            try:
                created = await client.create_entity(row.entity())
            except ResourceExistsError:
                return False
            row.etag = created.get("etag")
            return True
        return await self._using(table, add)

    async def replace(self, table: str, row: Row) -> None:
        """Write the row over the one read with ``row.etag``; ``Conflict`` if it changed since."""
        if row.etag is None:
            raise ValueError("replace needs the ETag of the row as it was read")

        async def write(client: TableClient) -> None:
            try:
                written = await client.update_entity(
                    row.entity(), mode=UpdateMode.REPLACE, etag=row.etag,
                    match_condition=MatchConditions.IfNotModified)
            except (ResourceModifiedError, ResourceNotFoundError) as error:
                if isinstance(error, ResourceNotFoundError) and _table_missing(error):
                    raise
                raise Conflict(f"{table} row {row.partition}/{row.key} changed") from None
            row.etag = written.get("etag")
        await self._using(table, write)

    async def delete(self, table: str, row: Row) -> None:
        """Delete the row as read with ``row.etag``; ``Conflict`` if it changed since.

        A row already gone is not an error: deleting is idempotent.
        """
        if row.etag is None:
            raise ValueError("delete needs the ETag of the row as it was read")

        async def remove(client: TableClient) -> None:
            try:
                await client.delete_entity(
                    row.partition, row.key, etag=row.etag,
                    match_condition=MatchConditions.IfNotModified)
            except ResourceModifiedError:
                raise Conflict(f"{table} row {row.partition}/{row.key} changed") from None
        await self._using(table, remove)

    async def upsert(self, table: str, row: Row) -> None:
        """Write the row whatever is there: last writer wins, for facts where newest is right."""
        async def write(client: TableClient) -> None:
            written = await client.upsert_entity(row.entity(), mode=UpdateMode.REPLACE)
            row.etag = written.get("etag")
        await self._using(table, write)

    async def rows(self, table: str, partition: str | None = None, *, start: str | None = None,
                   stop: str | None = None, limit: int | None = None,
                   at_or_before: datetime | None = None) -> list[Row]:
        """Rows in RowKey order, ``start`` <= RowKey < ``stop``: in one partition, or in all;
        with ``at_or_before``, only those whose ``At`` is no later.

        A key range is what Table Storage answers without scanning a partition,
        so the features that list (``shared.conversations``) write keys that
        sort as they must be read; a filter on ``At`` is answered by reading the
        range. At most ``limit`` rows.
        """
        conditions, parameters = [], {}
        for clause, name, value in (("PartitionKey eq @partition", "partition", partition),
                                    ("RowKey ge @start", "start", start),
                                    ("RowKey lt @stop", "stop", stop),
                                    ("At le @at", "at", at_or_before)):
            if value is not None:
                conditions.append(clause)
                parameters[name] = value

        async def query(client: TableClient) -> list[Row]:
            found: list[Row] = []
            entities = client.query_entities(
                " and ".join(conditions) or "RowKey ge ''", parameters=parameters,
                results_per_page=min(limit or 1000, 1000))
            async for entity in entities:
                found.append(_row(entity))
                if limit is not None and len(found) >= limit:
                    break
            return found
        return await self._using(table, query)

    async def rows_keyed(self, table: str, partition: str, keys: Iterable[str]) -> list[Row]:
        """The rows of one partition that have these RowKeys (those that exist), in RowKey
        order: one filtered query per ``MAX_KEYS_PER_QUERY`` keys, made at once."""
        wanted = sorted(set(keys))
        chunks = [wanted[at:at + MAX_KEYS_PER_QUERY]
                  for at in range(0, len(wanted), MAX_KEYS_PER_QUERY)]

        async def query(client: TableClient, chunk: list[str]) -> list[Row]:
            parameters = {"partition": partition} | {f"k{n}": key for n, key in enumerate(chunk)}
            either = " or ".join(f"RowKey eq @k{n}" for n in range(len(chunk)))
            entities = client.query_entities(f"PartitionKey eq @partition and ( {either} )",
                                             parameters=parameters)
            return [_row(entity) async for entity in entities]

        found = await asyncio.gather(*(self._using(table, lambda client, chunk=chunk:
                                                   query(client, chunk)) for chunk in chunks))
        return sorted((row for rows in found for row in rows), key=lambda row: row.key)

    async def transact(self, table: str, partition: str, ops: Sequence[Op]) -> None:
        """All of ``ops`` on rows of one partition, or none of them (an entity-group
        transaction, at most ``MAX_TRANSACTION``); ``Conflict`` if one cannot apply (a row
        inserted exists, one replaced or deleted changed or is gone). The rows written get
        their new ETags."""
        if not 0 < len(ops) <= MAX_TRANSACTION:
            raise ValueError(f"a transaction holds 1 to {MAX_TRANSACTION} operations")
        if any(row.partition != partition for _, row in ops):
            raise ValueError("a transaction's rows are all in its partition")
        content_type, body = table_batch.encode(
            [_part(self._endpoint, table, action, row) for action, row in ops])

        async def submit(client: TableClient) -> None:
            request = HttpRequest("POST", f"{self._endpoint}/$batch", content=body, headers={
                **_BATCH_HEADERS, "x-ms-version": client.api_version,
                "Content-Type": content_type})
            # Streamed, as the SDK does: its decoding policy has no reader for multipart.
            answer = await _pipeline(client).send_request(request, stream=True)
            answers = _answers(answer, await answer.read())
            failed = table_batch.failure(answers)
            if failed is not None:
                if failed.code == TableErrorCode.TABLE_NOT_FOUND:
                    raise _failed(ResourceNotFoundError, answer, failed.code)
                if failed.code in _CONFLICTS:
                    raise Conflict(f"{table} partition {partition}: operation {failed.index} "
                                   f"{failed.code}")
                raise _failed(HttpResponseError, answer, failed.code,
                              f"operation {failed.index} answered {failed.status}")
            if len(answers) != len(ops):
                raise _failed(HttpResponseError, answer, None,
                              f"{len(answers)} answers to {len(ops)} operations")
            for (action, row), result in zip(ops, answers, strict=True):
                if action != "delete":
                    row.etag = result.etag
        await self._using(table, submit)

    async def close(self) -> None:
        await self._client.close()
        if self._credential is not None:
            await self._credential.close()

    async def _using[T](self, table: str, operation: Callable[[TableClient], Awaitable[T]]) -> T:
        """``operation`` on the table's client, once the table exists; every failure to
        reach it as ``StoreUnavailable``.

        A table that disappeared (deleted by an operator, an emulator restarted
        empty) is created again and the operation tried once more: the creation
        this process remembers must not turn one lost table into a 503 for every
        request until a restart. A second miss is the store failing.
        """
        try:
            async with asyncio.timeout(STORE_TIMEOUT):
                try:
                    return await self._on_table(table, operation)
                except ResourceNotFoundError as error:
                    if not _table_missing(error):
                        raise
                    logger.warning("store table=%s missing: creating it again", table)
                    self._forget(table)
                return await self._on_table(table, operation)
        except (Conflict, StoreUnavailable):
            raise
        except (AzureError, OSError, TimeoutError) as error:
            raise StoreUnavailable(f"{type(error).__name__} on table {table}") from error

    async def _on_table[T](self, table: str,
                           operation: Callable[[TableClient], Awaitable[T]]) -> T:
        await self._created(table)
        client = self._table_clients.get(table)
        if client is None:
            client = self._table_clients[table] = self._client.get_table_client(table)
        return await operation(client)

    async def _created(self, table: str) -> None:
        """Create the table once per process (again once ``_forget`` says it is gone); a
        failure is not remembered, so it is retried."""
        creating = self._tables.get(table)
        if creating is None:
            creating = self._tables[table] = asyncio.ensure_future(self._create(table))
        try:
            await asyncio.shield(creating)
        except BaseException:
            if creating.done() and self._tables.get(table) is creating:
                del self._tables[table]
            raise

    def _forget(self, table: str) -> None:
        """The table is gone: the next use creates it again (unless a creation is under way)."""
        creating = self._tables.get(table)
        if creating is not None and creating.done():
            del self._tables[table]

    async def _create(self, table: str) -> None:
        with contextlib.suppress(ResourceExistsError):
            await self._client.create_table(table)


def _table_missing(error: ResourceNotFoundError) -> bool:
    """Whether the table is missing (``TableNotFound``), not a row (``ResourceNotFound``)."""
    code = getattr(error, "error_code", None)
    if code is None and error.response is not None:  # create_entity's errors carry no code
        code = error.response.headers.get("x-ms-error-code")
    return code == TableErrorCode.TABLE_NOT_FOUND


def utc(moment: datetime) -> datetime:
    """A plain UTC datetime (the table client answers its own datetime subclass)."""
    return datetime.fromtimestamp(moment.timestamp(), UTC)


def _part(endpoint: str, table: str, action: str, row: Row) -> table_batch.Part:
    """One of ``transact``'s operations as a change set's part: Insert Entity, Update
    Entity (over the ETag read), Insert Or Replace Entity, Delete Entity (over the ETag
    read, or ``*``), with the entity as azure-data-tables serializes it (its OData type
    annotations: ``Edm.DateTime``, ``Edm.Int64`` for a declared Int64, ``Edm.Double``...)."""
    if action == "delete":
        return table_batch.Part("DELETE", _entity_url(endpoint, table, row), None,
                               row.etag or "*")
    entity = _add_entity_properties(row.entity())
    if action == "insert":
        return table_batch.Part("POST", f"{endpoint}/{quote(table, safe='')}", entity,
                                no_content=True)
    if action == "upsert":
        return table_batch.Part("PUT", _entity_url(endpoint, table, row), entity)
    if action == "replace":
        if row.etag is None:
            raise ValueError("replace needs the ETag of the row as it was read")
        return table_batch.Part("PUT", _entity_url(endpoint, table, row), entity, row.etag)
    raise ValueError(f"no such operation: {action}")


def _entity_url(endpoint: str, table: str, row: Row) -> str:
    """``/table(PartitionKey='p',RowKey='r')``: quotes doubled, then percent-encoded, as
    the SDK's request builders write it."""
    def literal(value: str) -> str:
        return quote(value.replace("'", "''"), safe="")
    return (f"{endpoint}/{quote(table, safe='')}(PartitionKey='{literal(row.partition)}',"
            f"RowKey='{literal(row.key)}')")


def _pipeline(client: TableClient) -> AsyncPipelineClient[HttpRequest, AsyncHttpResponse]:
    """The table client's own pipeline client (its credential, retries, timeouts), where
    the SDK's ``submit_transaction`` sends its ``$batch`` too. Not public: the path is
    that of azure-data-tables 12.7.0 (requirements.txt), and tests/test_table_batch.py
    fails if it moves."""
    return client._client._client


def _answers(answer: AsyncHttpResponse, body: bytes) -> list[table_batch.Answer]:
    """Each operation's answer; a batch refused as a whole (anything but 202 Accepted)
    raised as the SDK raises it, a missing table as ``TableNotFound``."""
    if answer.status_code != 202:
        code = answer.headers.get("x-ms-error-code") or table_batch.error(body)[0]
        kind = ResourceNotFoundError if code == TableErrorCode.TABLE_NOT_FOUND else \
            HttpResponseError
        raise _failed(kind, answer, code, f"$batch answered {answer.status_code}")
    try:
        return table_batch.decode(answer.headers.get("Content-Type", ""), body)
    except table_batch.MalformedAnswer as error:
        raise _failed(HttpResponseError, answer, None, str(error)) from None


def _failed[E: HttpResponseError](kind: type[E], answer: AsyncHttpResponse, code: str | None,
                                  message: str = "") -> E:
    """The SDK's error for a failed transaction, carrying the service's error code."""
    error = kind(message=f"{message} {code or ''}".strip(), response=answer)
    error.error_code = code
    return error


def _row(entity: Any) -> Row:
    fields = {name: value for name, value in entity.items()
              if name not in ("PartitionKey", "RowKey")}
    return Row(entity["PartitionKey"], entity["RowKey"], fields, entity.metadata.get("etag"))


def connect(connection: StorageConnection) -> Store:
    """A store on ``connection``: its connection string, or its URI with an Azure credential."""
    if connection.connection_string:
        return Store(TableServiceClient.from_connection_string(
            connection.connection_string, **_CLIENT_OPTIONS))
    assert connection.table_service_uri is not None
    credential = _credential(connection)
    client = TableServiceClient(connection.table_service_uri, credential=credential,
                                **_CLIENT_OPTIONS)
    return Store(client, credential)


def _credential(connection: StorageConnection) -> Any:
    """The managed identity (user-assigned with a client ID), else ``DefaultAzureCredential``.

    Imported here only: ``azure.identity`` costs start-up time that apps using a
    connection string need not pay.
    """
    from azure.identity.aio import DefaultAzureCredential, ManagedIdentityCredential

    if connection.client_id:
        return ManagedIdentityCredential(client_id=connection.client_id)
    if connection.credential == "managedidentity":
        return ManagedIdentityCredential()
    return DefaultAzureCredential()


async def _close(store: Store) -> None:
    await store.close()


# One per event loop, made once: settings are fixed for the process.
_stores: PerLoop[StorageConnection, Store] = PerLoop(connect, _close)
close_stores = _stores.close


def store_for(settings: Settings) -> Store | None:
    """The running loop's store, or None when no storage connection is configured."""
    connection = settings.state_connection
    return None if connection is None else _stores.get(connection)
