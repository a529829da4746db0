"""A minimal Table Storage client on aiohttp, speaking the REST API directly: measurement only.

Just what ``bench.table_transport`` needs to weigh what azure-data-tables costs a
request: a point read, a replace over an ETag and an entity-group transaction, with
the app's own ``Row`` and ``Op``, against a connection string's account key. What
the SDK does and this does not: the Entra token path (managed identity), retries,
timeouts, error codes beyond the few below, other entity types than str, bool,
int, float and datetime, queries, and any API version but one.

- Shared Key authorization for the Table service ("Authorize with Shared Key",
  https://learn.microsoft.com/rest/api/storageservices/authorize-with-shared-key):
  ``VERB\\nContent-MD5\\nContent-Type\\nDate\\nCanonicalizedResource``, signed with
  HMAC-SHA256 under the base64-decoded account key; the resource is ``/account`` and
  the request's encoded path (with Azurite's path-style URLs, the account twice).
- JSON without metadata (``application/json;odata=nometadata``, "Payload format for
  Table service operations"): an answer carries no types, so the caller names the
  properties that are datetimes; a write annotates them (``Edm.DateTime``).
- Replace with ``If-Match`` and the ETag read ("Update Entity"); the new ETag is the
  answer's ``ETag`` header.
- Entity-group transactions ("Performing entity group transactions",
  https://learn.microsoft.com/rest/api/storageservices/performing-entity-group-transactions):
  one ``$batch`` POST, a multipart/mixed batch holding one change set of
  ``application/http`` parts, answered with a part (status line, ETag) per operation:
  written and read by the app's own ``shared.table_batch``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from email.utils import formatdate
from typing import Any
from urllib.parse import quote

import aiohttp
from yarl import URL

from shared import table_batch
from shared.store import Conflict, Op, Row

VERSION = "2019-02-02"
JSON = "application/json"
NO_METADATA = "application/json;odata=nometadata"
#: What each of ``transact``'s actions is on the wire: method and extra headers.
_ACTIONS = {"insert": "POST", "replace": "PUT", "upsert": "PUT", "delete": "DELETE"}
_CONFLICTS = {404, 409, 412}


class RestError(Exception):
    """Table Storage answered something this client does not handle."""


class TableRest:
    """Requests to one account's tables, signed with its key, on ``session``; the
    properties named in ``datetimes`` are read back as datetimes."""

    def __init__(self, connection_string: str, session: aiohttp.ClientSession,
                 datetimes: Iterable[str] = ()) -> None:
        parts = dict(part.split("=", 1) for part in connection_string.split(";") if "=" in part)
        self._account = parts["AccountName"]
        self._key = base64.b64decode(parts["AccountKey"])
        endpoint = parts.get("TableEndpoint") or (
            f"{parts.get('DefaultEndpointsProtocol', 'https')}://{self._account}.table."
            f"{parts.get('EndpointSuffix', 'core.windows.net')}")
        self._endpoint = endpoint.rstrip("/")
        self._base_path = URL(self._endpoint).path.rstrip("/")
        self._session = session
        self._datetimes = tuple(datetimes)

    async def get(self, table: str, partition: str, key: str) -> Row | None:
        """The row with these keys and its ETag; None if there is none. The properties
        named ``datetimes`` are read as datetimes; all others as JSON has them."""
        async with self._request("GET", _entity_path(table, partition, key)) as answer:
            if answer.status == 404:
                return None
            body = await _expect(answer, 200)
            fields = json.loads(body)
        for name in ("PartitionKey", "RowKey", "Timestamp"):
            fields.pop(name, None)
        for name in self._datetimes:
            if name in fields:
                fields[name] = datetime.fromisoformat(fields[name])
        return Row(partition, key, fields, answer.headers["ETag"])

    async def replace(self, table: str, row: Row) -> None:
        """Write the row over the one read with ``row.etag``; ``Conflict`` if it changed."""
        if row.etag is None:
            raise ValueError("replace needs the ETag of the row as it was read")
        async with self._request("PUT", _entity_path(table, row.partition, row.key),
                                 json.dumps(_entity(row)).encode(), JSON,
                                 {"If-Match": row.etag}) as answer:
            if answer.status in _CONFLICTS:
                raise Conflict(f"{table} row {row.partition}/{row.key} changed")
            await _expect(answer, 204)
            row.etag = answer.headers["ETag"]

    async def transact(self, table: str, partition: str, ops: Sequence[Op]) -> None:
        """All of ``ops`` or none (one change set); the rows written get their ETags."""
        if any(row.partition != partition for _, row in ops):
            raise ValueError("a transaction's rows are all in its partition")
        content_type, body = table_batch.encode(
            [_part(self._endpoint, table, action, row) for action, row in ops])
        async with self._request("POST", "/$batch", body, content_type) as answer:
            text = await _expect(answer, 202)
            results = table_batch.decode(answer.headers["Content-Type"], text)
        failed = table_batch.failure(results)
        if failed is not None or len(results) != len(ops):
            if failed is not None and failed.status in _CONFLICTS:
                raise Conflict(f"{table} partition {partition}: {failed.status}")
            raise RestError(f"transaction answered {failed}: {text[:300]!r}")
        for (action, row), result in zip(ops, results, strict=True):
            if action != "delete":
                row.etag = result.etag

    def _request(self, method: str, path: str, body: bytes = b"", content_type: str = "",
                 headers: Mapping[str, str] | None = None) -> Any:
        """The signed request (an aiohttp context manager)."""
        path = f"{self._base_path}{path}"
        date = formatdate(usegmt=True)
        to_sign = f"{method}\n\n{content_type}\n{date}\n/{self._account}{path}"
        signature = base64.b64encode(hmac.digest(self._key, to_sign.encode(), hashlib.sha256))
        sent = {"x-ms-date": date, "x-ms-version": VERSION, "DataServiceVersion": "3.0",
                "Accept": NO_METADATA,
                "Authorization": f"SharedKey {self._account}:{signature.decode()}",
                **(headers or {})}
        if content_type:
            sent["Content-Type"] = content_type
        url = URL(f"{self._endpoint.removesuffix(self._base_path)}{path}", encoded=True)
        return self._session.request(method, url, data=body or None, headers=sent)


def _entity_path(table: str, partition: str, key: str) -> str:
    """``/table(PartitionKey='p',RowKey='r')``, quotes doubled, percent-encoded."""
    def literal(value: str) -> str:
        return quote(value.replace("'", "''"), safe="")
    return f"/{table}(PartitionKey='{literal(partition)}',RowKey='{literal(key)}')"


def _entity(row: Row) -> dict[str, Any]:
    entity: dict[str, Any] = {"PartitionKey": row.partition, "RowKey": row.key}
    for name, value in row.fields.items():
        if isinstance(value, datetime):
            entity[name] = value.astimezone(UTC).isoformat().replace("+00:00", "Z")
            entity[f"{name}@odata.type"] = "Edm.DateTime"
        elif isinstance(value, int) and not isinstance(value, bool) and \
                not -2**31 <= value < 2**31:
            entity[name], entity[f"{name}@odata.type"] = str(value), "Edm.Int64"
        else:
            entity[name] = value
    return entity


def _part(endpoint: str, table: str, action: str, row: Row) -> table_batch.Part:
    """One operation of a change set (``shared.table_batch`` writes it)."""
    if action == "insert":
        return table_batch.Part("POST", f"{endpoint}/{table}", _entity(row), no_content=True)
    target = f"{endpoint}{_entity_path(table, row.partition, row.key)}"
    if action == "delete":
        return table_batch.Part("DELETE", target, None, row.etag or "*")
    return table_batch.Part(_ACTIONS[action], target, _entity(row),
                            row.etag or "*" if action == "replace" else None)


async def _expect(answer: aiohttp.ClientResponse, status: int) -> bytes:
    body = await answer.read()
    if answer.status != status:
        raise RestError(f"{answer.method} {answer.url.path} answered {answer.status}: "
                        f"{body[:300]!r}")
    return body
