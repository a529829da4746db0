"""A store whose tables disappear while the app runs heals on the next request.

An operator deletes a table, or Azurite restarts empty: the app must create the
table again instead of answering 503 until its process restarts. The app runs
in one event loop, as the worker keeps it (one store, its tables remembered),
against its own Azurite: deleting tables in the session's shared one would
pull them from under other tests.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator

import azure.functions as func
import pytest
from azure.data.tables import TableServiceClient
from deployed import ORIGIN, deployed
from harness import created, function_main, request
from storage import start_azurite

from devhost.azurite import Azurite
from shared import deliveries
from shared.settings import StorageConnection, app_settings
from shared.store import Conflict, Row, close_stores, connect
from shared.twilio_client import close_clients


@pytest.fixture(scope="module")
def azurite() -> Iterator[Azurite]:
    own = start_azurite()
    yield own
    own.stop()


@pytest.fixture
def app(app_env, azurite, monkeypatch):
    with deployed(app_env, monkeypatch, azurite.connection_string) as env:
        app_settings.cache_clear()
        yield env


def delete_table(azurite: Azurite, table: str) -> None:
    """What an operator does: delete the table, with azure-data-tables (blocking, as a script)."""
    with TableServiceClient.from_connection_string(azurite.connection_string) as service:
        service.delete_table(table)


async def in_worker(steps):
    """``steps`` on one loop, as one worker process serves its requests; clients closed after."""
    try:
        return await steps()
    finally:
        await close_clients()
        await close_stores()


async def send(to: str) -> str:
    response = await function_main("send_sms")(request(
        "POST", f"{ORIGIN}/api/send_sms", json_body={"to": to, "body": "Your table is ready"}))
    return created(response)["sid"]


async def status(sid: str):
    return await function_main("status")(func.HttpRequest(
        "GET", f"{ORIGIN}/api/status/{sid}", body=b"", route_params={"sid": sid}))


def test_a_table_deleted_while_the_app_runs_is_created_again(app, azurite, caplog):
    caplog.set_level(logging.WARNING)

    async def steps():
        before = await send("+14155550301")
        assert (await status(before)).status_code == 200  # the table exists, remembered
        await asyncio.to_thread(delete_table, azurite, deliveries.TABLE)
        after = await send("+14155550302")
        return before, after, await status(after), await status(before)

    _, after, found, lost = asyncio.run(in_worker(steps))
    assert found.status_code == 200, found.get_body()
    assert json.loads(found.get_body())["sid"] == after
    assert lost.status_code == 404  # its row went with the table: gone, not a 503
    assert "store=unavailable" not in caplog.text
    assert f"store table={deliveries.TABLE} missing: creating it again" in caplog.text


@pytest.mark.parametrize("operation", ["get", "insert", "replace", "upsert", "rows",
                                       "rows_keyed", "transact"])
def test_every_store_operation_recreates_a_missing_table_once(azurite, operation):
    table = f"heal{operation.replace('_', '')}"

    async def steps():
        store = connect(StorageConnection("STATE_STORAGE", azurite.connection_string, None))
        try:
            row = Row("p", "r", {"Value": 1})
            assert await store.insert(table, row)  # created, and remembered
            assert await store.get(table, "p", "missing") is None  # a missing row is no table
            await asyncio.to_thread(delete_table, azurite, table)
            match operation:
                case "get":
                    assert await store.get(table, "p", "r") is None
                case "insert":
                    assert await store.insert(table, Row("p", "r", {"Value": 2}))
                case "replace":  # the row went with the table: it changed since it was read
                    with pytest.raises(Conflict):
                        await store.replace(table, row)
                case "upsert":
                    await store.upsert(table, Row("p", "r", {"Value": 3}))
                case "rows":
                    assert await store.rows(table, "p") == []
                case "rows_keyed":
                    assert await store.rows_keyed(table, "p", ["r", "t"]) == []
                case "transact":
                    await store.transact(table, "p", [("insert", Row("p", "r", {"Value": 5}))])
            await store.upsert(table, Row("p", "s", {"Value": 4}))  # the table is back
            return [found.key for found in await store.rows(table, "p")]
        finally:
            await store.close()

    keys = asyncio.run(steps())
    assert "s" in keys

