"""Entity-group transactions written and read by ``shared.table_batch`` and sent by the
Store through the table client's own pipeline: the body against an independent MIME
parser, the answers as the service documents them, and the rows on real Azurite against
what azure-data-tables' own ``submit_transaction`` writes."""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import importlib.metadata
import math
import re
import secrets
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from azure.core import AsyncPipelineClient
from azure.core.credentials import AccessToken
from azure.data.tables import EdmType, UpdateMode
from azure.data.tables.aio import TableClient, TableServiceClient
from storage import run, shared_azurite

from shared import store as store_module
from shared import table_batch
from shared.settings import StorageConnection
from shared.store import Conflict, Row, Store, StoreUnavailable, connect
from shared.table_batch import Answer, MalformedAnswer, Part

TABLE = "tablebatch"
REQUIREMENTS = Path(__file__).resolve().parents[1] / "requirements.txt"
#: Keys with what a URL must escape: quotes (doubled in the key literal), spaces,
#: percent, plus, ampersand, non-ASCII (Table Storage forbids / \ # ? in keys).
AWKWARD_KEYS = ("it's", "o''brien \"quoted\"", "50% + more & less", "Zoë 📞 東京")


def partition() -> str:
    return f"p-{secrets.token_hex(6)}"


def store() -> Store:
    return connect(StorageConnection("STATE_STORAGE", shared_azurite().connection_string, None))


def on_store(scenario: Callable[[Store], Awaitable[None]]) -> None:
    """``scenario`` on a store of its own, closed after."""
    async def run_it() -> None:
        ours = store()
        try:
            await scenario(ours)
        finally:
            await ours.close()
    run(run_it())


# --- the private paths the Store relies on, pinned -------------------------------------


class _Token:
    """An Entra credential that never has to answer: building the client is enough."""

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        raise AssertionError("no request is made")

    async def close(self) -> None:
        pass


@pytest.mark.parametrize("credential", ["shared key", "entra"])
def test_the_store_sends_through_the_table_clients_pipeline_of_the_pinned_sdk(
        credential: str) -> None:
    pinned = re.search(r"^azure-data-tables==(\S+)$", REQUIREMENTS.read_text(), re.MULTILINE)
    assert pinned is not None
    assert importlib.metadata.version("azure-data-tables") == pinned.group(1), (
        "azure-data-tables changed: check that TableClient._client._client is still the "
        "pipeline client its submit_transaction sends through, and that "
        "azure.data.tables._serialize._add_entity_properties still serializes entities, "
        "then update this pin")

    async def check() -> None:
        if credential == "entra":
            service = TableServiceClient("https://acct.table.core.windows.net",
                                         credential=_Token())
        else:
            service = TableServiceClient.from_connection_string(
                shared_azurite().connection_string)
        async with service:
            client = service.get_table_client(TABLE)
            pipeline = store_module._pipeline(client)
            assert isinstance(pipeline, AsyncPipelineClient), (
                "TableClient._client._client is no longer azure-core's pipeline client: "
                "shared.store._pipeline must follow azure-data-tables")
            # The generated client sends its requests, submit_transaction's $batch
            # included, through this very pipeline client.
            assert client._client._client is pipeline
            assert type(client._client).__name__ == "AzureTable"
    asyncio.run(check())


# --- the body, read back by the standard library's MIME parser --------------------------


def test_the_body_is_one_change_set_of_binary_http_parts_in_order() -> None:
    parts = [
        Part("POST", "https://a.table.core.windows.net/t", {"PartitionKey": "p", "RowKey": "é"},
             no_content=True),
        Part("PUT", "https://a.table.core.windows.net/t(PartitionKey='p',RowKey='r')",
             {"N": 1}, 'W/"datetime\'2026-12-01T00%3A00%3A00.1Z\'"'),
        Part("DELETE", "https://a.table.core.windows.net/t(PartitionKey='p',RowKey='d')",
             None, "*"),
    ]
    content_type, body = table_batch.encode(parts)
    batch = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    assert batch.get_content_type() == "multipart/mixed"
    [changeset] = batch.get_payload()
    assert changeset.get_content_type() == "multipart/mixed"
    operations = changeset.get_payload()
    assert [op.get_content_type() for op in operations] == ["application/http"] * 3
    assert [op["Content-Transfer-Encoding"] for op in operations] == ["binary"] * 3
    assert [op["Content-ID"] for op in operations] == ["0", "1", "2"]
    requests = [op.get_payload().split("\r\n") for op in operations]
    assert [lines[0] for lines in requests] == [f"{p.method} {p.url} HTTP/1.1" for p in parts]
    insert, replace, delete = requests
    assert "Prefer: return-no-content" in insert and "Content-Type: application/json" in insert
    assert insert[-1] == '{"PartitionKey": "p", "RowKey": "\\u00e9"}'
    assert f"If-Match: {parts[1].if_match}" in replace and replace[-1] == '{"N": 1}'
    assert "If-Match: *" in delete and not any(line.startswith("Content-Type") for line in delete)
    assert all("DataServiceVersion: 3.0" in lines for lines in requests)


# --- answers, as the service documents them -------------------------------------------

SUCCESS = (
    "--batchresponse_1\r\nContent-Type: multipart/mixed; boundary=changesetresponse_2\r\n\r\n"
    "--changesetresponse_2\r\nContent-Type: application/http\r\n"
    "Content-Transfer-Encoding: binary\r\n\r\n"
    "HTTP/1.1 204 No Content\r\nContent-ID: 1\r\nDataServiceVersion: 3.0;\r\n"
    "ETag: W/\"datetime'2026-12-01T00%3A00%3A00.1Z'\"\r\n\r\n\r\n"
    "--changesetresponse_2\r\nContent-Type: application/http\r\n"
    "Content-Transfer-Encoding: binary\r\n\r\n"
    "HTTP/1.1 201 Created\r\nContent-ID: 2\r\nContent-Type: application/json\r\n"
    "ETag: W/\"datetime'2026-12-01T00%3A00%3A00.2Z'\"\r\n\r\n"
    '{"PartitionKey":"p","RowKey":"--changesetresponse_2 in a value"}\r\n'
    "--changesetresponse_2\r\nContent-Type: application/http\r\n"
    "Content-Transfer-Encoding: binary\r\n\r\n"
    "HTTP/1.1 204 No Content\r\nContent-ID: 3\r\n\r\n\r\n"
    "--changesetresponse_2--\r\n--batchresponse_1--\r\n")
FAILED = (
    "--batchresponse_1\r\nContent-Type: multipart/mixed; boundary=changesetresponse_2\r\n\r\n"
    "--changesetresponse_2\r\nContent-Type: application/http\r\n"
    "Content-Transfer-Encoding: binary\r\n\r\n"
    "HTTP/1.1 412 Precondition Failed\r\nContent-ID: 2\r\n"
    "Content-Type: application/json;odata=minimalmetadata;charset=utf-8\r\n\r\n"
    '{"odata.error":{"code":"UpdateConditionNotSatisfied","message":{"lang":"en-US",'
    '"value":"1:The update condition specified in the request was not satisfied.\\n'
    'RequestId:x"}}}\r\n'
    "--changesetresponse_2--\r\n--batchresponse_1--\r\n")
ANSWER_TYPE = "multipart/mixed; boundary=batchresponse_1"


def test_an_applied_transaction_answers_each_operations_etag_in_order() -> None:
    answers = table_batch.decode(ANSWER_TYPE, SUCCESS.encode())
    assert answers == [Answer(204, "W/\"datetime'2026-12-01T00%3A00%3A00.1Z'\""),
                       Answer(201, "W/\"datetime'2026-12-01T00%3A00%3A00.2Z'\""),
                       Answer(204)]
    assert table_batch.failure(answers) is None


def test_a_failed_transaction_names_the_operation_and_its_code() -> None:
    answers = table_batch.decode('multipart/mixed; boundary="batchresponse_1"',
                                 FAILED.replace("\r\n", "\n").encode())
    assert table_batch.failure(answers) == Answer(412, None, "UpdateConditionNotSatisfied", 1)


@pytest.mark.parametrize(("content_type", "body"), [
    ("multipart/mixed", SUCCESS),  # no boundary
    (ANSWER_TYPE, SUCCESS.replace("--batchresponse_1--", "")),  # never closed
    (ANSWER_TYPE, "--batchresponse_1\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
                  "--batchresponse_1--\r\n"),  # no operation answered
    (ANSWER_TYPE, SUCCESS.replace("HTTP/1.1 201 Created", "HTTP/1.1 Created")),
])
def test_an_answer_not_shaped_as_documented_is_refused(content_type: str, body: str) -> None:
    with pytest.raises(MalformedAnswer):
        table_batch.decode(content_type, body.encode())


def test_an_error_without_odata_shape_has_no_code_or_index() -> None:
    assert table_batch.error(b"<xml/>") == (None, None)
    assert table_batch.error('{"odata.error":{"code":"X","message":{"value":"no index"}}}') \
        == ("X", None)


# --- on Azurite: what the SDK's submit_transaction would have written -------------------


def fields() -> dict[str, Any]:
    return {"Text": 'say "hi" it\'s Zoë 📞', "Empty": "", "Yes": True, "No": False,
            "Small": -2**31, "Big": (2**40, EdmType.INT64), "Ratio": 1.0, "Half": 0.5,
            "NotANumber": math.nan, "At": datetime(2026, 12, 1, 8, 30, 15, 123456, tzinfo=UTC),
            "Blob": b"\x00\xff", "Id": uuid.UUID(int=7), "Gone": None}


async def read(client: TableClient, partition_: str, key: str) -> dict[str, Any]:
    entity = await client.get_entity(partition_, key)
    return {name: (value.value, value.edm_type) if hasattr(value, "edm_type") else value
            for name, value in entity.items() if name != "RowKey"}


def same(left: dict[str, Any], right: dict[str, Any]) -> bool:
    """Equal, NaN equal to itself, and each value of the same type."""
    def key(value: Any) -> Any:
        return ("nan",) if isinstance(value, float) and math.isnan(value) else value
    return left.keys() == right.keys() and all(
        type(left[name]) is type(right[name]) and key(left[name]) == key(right[name])
        for name in left)


@pytest.mark.parametrize("key", AWKWARD_KEYS)
def test_every_operation_writes_what_submit_transaction_writes(key: str) -> None:
    part = partition()

    async def scenario() -> None:
        ours = store()
        sdk = TableServiceClient.from_connection_string(shared_azurite().connection_string)
        try:
            client = sdk.get_table_client(TABLE)
            await ours.upsert(TABLE, Row(part, "seed", {}))  # the table exists
            for prefix in ("sdk", "ours"):
                await ours.insert(TABLE, Row(part, f"{prefix}:{key}:replaced", {"Old": 1}))
                await ours.insert(TABLE, Row(part, f"{prefix}:{key}:deleted", {"Old": 1}))
            await client.submit_transaction([
                ("create", {"PartitionKey": part, "RowKey": f"sdk:{key}:inserted", **fields()}),
                ("upsert", {"PartitionKey": part, "RowKey": f"sdk:{key}:upserted", **fields()},
                 {"mode": UpdateMode.REPLACE}),
                ("update", {"PartitionKey": part, "RowKey": f"sdk:{key}:replaced", **fields()},
                 {"mode": UpdateMode.REPLACE}),
                ("delete", {"PartitionKey": part, "RowKey": f"sdk:{key}:deleted"})])
            replaced = await ours.get(TABLE, part, f"ours:{key}:replaced")
            assert replaced is not None
            replaced.fields = fields()
            rows = [Row(part, f"ours:{key}:inserted", fields()),
                    Row(part, f"ours:{key}:upserted", fields()), replaced,
                    await ours.get(TABLE, part, f"ours:{key}:deleted")]
            await ours.transact(TABLE, part, [("insert", rows[0]), ("upsert", rows[1]),
                                              ("replace", rows[2]), ("delete", rows[3])])
            for kind in ("inserted", "upserted", "replaced"):
                theirs = await read(client, part, f"sdk:{key}:{kind}")
                written = await read(client, part, f"ours:{key}:{kind}")
                assert "Gone" not in written and written["Big"] == (2**40, EdmType.INT64)
                assert same(written, theirs), (kind, written, theirs)
            for row in rows[:3]:  # each row written has the ETag it now has
                now = await ours.get(TABLE, part, row.key)
                assert now is not None and row.etag == now.etag
            for prefix in ("sdk", "ours"):
                assert await ours.get(TABLE, part, f"{prefix}:{key}:deleted") is None
        finally:
            await sdk.close()
            await ours.close()

    run(scenario())


def test_a_datetime_read_and_written_again_keeps_the_services_precision() -> None:
    part = partition()

    async def scenario(ours: Store) -> None:
        await ours.upsert(TABLE, Row(part, "seed", {}))
        # Table Storage keeps ten-millionths of a second; Python's datetime, millionths.
        sdk = TableServiceClient.from_connection_string(shared_azurite().connection_string)
        async with sdk:
            await sdk.get_table_client(TABLE).upsert_entity(
                {"PartitionKey": part, "RowKey": "r",
                 "At": ("2026-12-01T08:30:15.1234567Z", EdmType.DATETIME)})
        row = await ours.get(TABLE, part, "r")
        assert row is not None
        row.fields["N"] = 1
        await ours.transact(TABLE, part, [("replace", row)])
        again = await ours.get(TABLE, part, "r")
        assert again is not None
        assert again.fields["At"].tables_service_value == "2026-12-01T08:30:15.1234567Z"
        assert again.fields["N"] == 1

    on_store(scenario)


def test_a_failed_operation_is_named_by_its_index_and_code_and_nothing_applies() -> None:
    part = partition()

    async def scenario(ours: Store) -> None:
        taken = Row(part, "taken", {"N": 1})
        await ours.transact(TABLE, part, [("insert", taken)])
        stale = Row(part, "taken", {"N": 2}, taken.etag)
        await ours.replace(TABLE, Row(part, "taken", {"N": 3}, taken.etag))
        cases = [
            ([("upsert", Row(part, "a", {})), ("insert", Row(part, "taken", {}))],
             "operation 1 EntityAlreadyExists"),
            ([("upsert", Row(part, "a", {})), ("upsert", Row(part, "b", {})),
              ("replace", stale)], "operation 2 UpdateConditionNotSatisfied"),
            ([("delete", Row(part, "missing", {})), ("upsert", Row(part, "a", {}))],
             "operation 0 ResourceNotFound"),
            ([("upsert", Row(part, "a", {})),
              ("replace", Row(part, "missing", {}, taken.etag))],
             "operation 1 ResourceNotFound"),
        ]
        for ops, named in cases:
            with pytest.raises(Conflict, match=f"{TABLE} partition {part}: {named}$"):
                await ours.transact(TABLE, part, ops)
        # A request the service refuses for another reason is the store failing.
        with pytest.raises(StoreUnavailable) as refused:
            await ours.transact(TABLE, part, [("upsert", Row(part, "a", {})),
                                              ("upsert", Row(part, "a", {}))])
        assert getattr(refused.value.__cause__, "error_code", None) == "InvalidDuplicateRow"
        assert [row.key for row in await ours.rows(TABLE, part)] == ["taken"]

    on_store(scenario)


def test_an_entity_the_sdk_cannot_serialize_is_refused_before_any_request() -> None:
    async def scenario(ours: Store) -> None:
        with pytest.raises(TypeError):  # an int over 32 bits must say it is an Int64
            await ours.transact(TABLE, "p", [("upsert", Row("p", "r", {"N": 2**40}))])
        with pytest.raises(ValueError, match="ETag"):
            await ours.transact(TABLE, "p", [("replace", Row("p", "r", {}))])
        assert TABLE not in ours._tables  # nothing was sent, not even the table's creation

    on_store(scenario)


def test_a_batch_refused_as_a_whole_is_the_store_failing_with_the_services_code() -> None:
    part = partition()

    async def scenario(ours: Store) -> None:
        await ours.upsert(TABLE, Row(part, "seed", {}))
        # Over the 4 MiB a transaction may carry: refused before any operation is read.
        bulky = {f"S{n}": "x" * 30_000 for n in range(30)}
        with pytest.raises(StoreUnavailable) as refused:
            await ours.transact(TABLE, part, [("upsert", Row(part, f"r{n}", bulky))
                                              for n in range(6)])
        cause = refused.value.__cause__
        assert getattr(cause, "status_code", None) == 413
        assert getattr(cause, "error_code", None) == "RequestBodyTooLarge"
        assert [row.key for row in await ours.rows(TABLE, part)] == ["seed"]

    on_store(scenario)
