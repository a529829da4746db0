"""Push: Notification Hubs' REST as the app speaks it (against the double, which checks
each SAS token), the devices function, the events queued on Azurite's queue service,
and push_notify sending them to the owner's devices."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import azure.functions as func
import pytest
from azure.functions.queue import QueueMessage
from harness import function_main, refused, request
from push_support import Hub, close_clients, drain, hub_double, new_owner, queue

from push_sandbox.double import DEFAULT_HUB
from push_sandbox.faults import Fault
from shared import notification_hubs, push
from shared.notification_hubs import (
    Installation,
    NotificationHubsError,
    hub_for,
    parse_connection,
)
from shared.settings import SettingError, app_settings, load_settings

APNS_TOKEN = "ab" * 32
FCM_TOKEN = "fcm_" + "x" * 150
SINGLE_USER = "developer"


def hub_settings() -> tuple[str | None, str | None]:
    settings = app_settings()
    return settings.notification_hubs_connection, settings.notification_hubs_hub


def run_with_hub(test: Callable[[Hub], Awaitable[Any]], **options: Any) -> Any:
    async def wrapped() -> Any:
        async with hub_double(**options) as hub:
            try:
                return await test(hub)
            finally:
                await close_clients()
    return asyncio.run(wrapped())


@pytest.fixture
def push_env(app_env, monkeypatch):
    """The app against the sandbox; ``set_hub(hub)`` turns push on through it."""
    monkeypatch.setenv("VOICE_SINGLE_USER_IDENTITY", SINGLE_USER)

    def set_hub(hub: Hub, **more: str) -> None:
        for name, value in hub.env(**more).items():
            monkeypatch.setenv(name, value)
        app_settings.cache_clear()
    return set_hub


# --- the connection string -------------------------------------------------------------


def test_an_sb_endpoint_is_reached_over_https():
    connection = parse_connection("Endpoint=sb://contoso.servicebus.windows.net/;"
                                  "SharedAccessKeyName=DefaultFullSharedAccessSignature;"
                                  "SharedAccessKey=c2VjcmV0")
    assert connection.endpoint == "https://contoso.servicebus.windows.net/"
    assert connection.key_name == "DefaultFullSharedAccessSignature"
    assert "c2VjcmV0" not in repr(connection)


@pytest.mark.parametrize("endpoint", ["http://contoso.servicebus.windows.net/",
                                      "ftp://127.0.0.1/", "sb://", "not a url"])
def test_a_plain_http_endpoint_is_taken_on_loopback_only(endpoint):
    with pytest.raises(ValueError) as error:
        parse_connection(f"Endpoint={endpoint};SharedAccessKeyName=r;SharedAccessKey=s3cr3t")
    assert "s3cr3t" not in str(error.value)
    assert parse_connection("Endpoint=http://127.0.0.1:9/nh;SharedAccessKeyName=r;"
                            "SharedAccessKey=k").endpoint == "http://127.0.0.1:9/nh/"


def test_the_hub_settings_go_together_and_never_repeat_the_key(app_env):
    base = {"TWILIO_ACCOUNT_SID": "AC" + "a1" * 16, "TWILIO_AUTH_TOKEN": "t"}
    with pytest.raises(SettingError) as error:
        load_settings({**base, "NOTIFICATION_HUBS_HUB": "hub"})
    assert error.value.name == "NOTIFICATION_HUBS_CONNECTION"
    with pytest.raises(SettingError) as error:
        load_settings({**base, "NOTIFICATION_HUBS_HUB": "hub",
                       "NOTIFICATION_HUBS_CONNECTION": "Endpoint=sb://x/;SharedAccessKey=k3y"})
    assert error.value.name == "NOTIFICATION_HUBS_CONNECTION" and "k3y" not in str(error.value)
    with pytest.raises(SettingError) as error:
        load_settings({**base, "PUSH_PREVIEW": "everything"})
    assert error.value.name == "PUSH_PREVIEW"


def test_push_is_off_without_a_queue_and_said_once(app_env, monkeypatch, caplog):
    monkeypatch.setenv("NOTIFICATION_HUBS_HUB", "hub")
    monkeypatch.setenv("NOTIFICATION_HUBS_CONNECTION", "Endpoint=sb://contoso.servicebus."
                       "windows.net/;SharedAccessKeyName=r;SharedAccessKey=k")
    app_settings.cache_clear()
    with caplog.at_level(logging.INFO, "twilio_functions"):
        settings = app_settings()
        app_settings()
    assert not settings.push_on
    said = [r for r in caplog.records if "push notifications are off" in r.getMessage()]
    assert len(said) == 1


# --- Notification Hubs' REST, against the double --------------------------------------


def test_installations_are_written_read_and_deleted(push_env):
    async def test(hub: Hub) -> None:
        push_env(hub)
        client = hub_for(*hub_settings())
        assert client is not None
        assert await client.get_installation("phone-1") is None
        await client.put_installation(Installation("phone-1", "apns", APNS_TOKEN, ("owner:ab",)))
        found = await client.get_installation("phone-1")
        assert found == Installation("phone-1", "apns", APNS_TOKEN, ("owner:ab",))
        await client.delete_installation("phone-1")
        await client.delete_installation("phone-1")  # gone already: no error
        assert await client.get_installation("phone-1") is None
    run_with_hub(test)


def test_a_wrong_key_is_a_typed_error_without_the_key(push_env):
    async def test(hub: Hub) -> None:
        wrong = hub.connection.rsplit("=", 1)[0] + "=d3JvbmcwMDA="
        push_env(Hub(hub.double, wrong))
        client = hub_for(*hub_settings())
        assert client is not None
        with pytest.raises(NotificationHubsError) as error:
            await client.send("owner:ab", "apns", {"aps": {}})
        assert error.value.status == 401
        assert "d3JvbmcwMDA" not in str(error.value)
    run_with_hub(test)


def test_throttling_carries_retry_after(push_env):
    async def test(hub: Hub) -> None:
        push_env(hub)
        hub.double.add_fault(Fault(status=429, retry_after=7))
        client = hub_for(*hub_settings())
        assert client is not None
        with pytest.raises(NotificationHubsError) as error:
            await client.send("owner:ab", "fcmv1", {"message": {}})
        assert (error.value.status, error.value.retry_after) == (429, 7)
    run_with_hub(test)


def test_the_token_is_made_once_and_renewed_near_expiry(push_env, monkeypatch):
    made = []
    real = notification_hubs.sas_token
    monkeypatch.setattr(notification_hubs, "sas_token",
                        lambda *args: made.append(args) or real(*args))

    async def test(hub: Hub) -> None:
        push_env(hub)
        client = hub_for(*hub_settings())
        assert client is not None
        await client.get_installation("a")
        await client.get_installation("b")
        assert len(made) == 1
        clock = notification_hubs.time.time() + notification_hubs.TOKEN_SECONDS - 60
        monkeypatch.setattr(notification_hubs.time, "time", lambda: clock)
        await client.get_installation("c")
        assert len(made) == 2
    run_with_hub(test)


# --- devices ---------------------------------------------------------------------------


def signed_in(user: str) -> dict[str, str]:
    return {"X-MS-CLIENT-PRINCIPAL-ID": user, "X-MS-CLIENT-PRINCIPAL-IDP": "aad"}


async def device(method: str, installation_id: str, body: Any = None,
                 headers: dict[str, str] | None = None) -> func.HttpResponse:
    url = f"http://localhost:7071/api/devices/{installation_id}"
    req = request(method, url, json_body=body, headers=headers)
    req = func.HttpRequest(req.method, req.url, headers=dict(req.headers), body=req.get_body(),
                           route_params={"installation_id": installation_id})
    app_settings.cache_clear()
    return await function_main("devices")(req)


def test_a_device_is_registered_tagged_with_its_owner_only(push_env):
    async def test(hub: Hub) -> None:
        push_env(hub)
        answer = await device("PUT", "iphone-1", {"platform": "apns", "push_channel": APNS_TOKEN,
                                                  "locale": "en-US"})
        assert answer.status_code == 204, answer.get_body()
        kept = hub.double.installations(DEFAULT_HUB)["iphone-1"]
        assert kept["tags"] == [push.owner_tag("anonymous")]
        assert (kept["platform"], kept["pushChannel"]) == ("apns", APNS_TOKEN)
        assert (await device("DELETE", "iphone-1")).status_code == 204
        assert "iphone-1" not in hub.double.installations(DEFAULT_HUB)
    run_with_hub(test)


def test_a_user_cannot_replace_or_remove_another_users_device(push_env, monkeypatch):
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "True")

    async def test(hub: Hub) -> None:
        push_env(hub)
        mine, theirs = signed_in(secrets.token_hex(6)), signed_in(secrets.token_hex(6))
        body = {"platform": "fcmv1", "push_channel": FCM_TOKEN}
        assert (await device("PUT", "pixel-1", body, mine)).status_code == 204
        refused(await device("PUT", "pixel-1", {**body, "push_channel": "y" * 40}, theirs),
                403, "installation-not-yours")
        refused(await device("DELETE", "pixel-1", headers=theirs), 403, "installation-not-yours")
        assert hub.double.installations(DEFAULT_HUB)["pixel-1"]["pushChannel"] == FCM_TOKEN
        assert (await device("PUT", "pixel-1", body, mine)).status_code == 204
    run_with_hub(test)


@pytest.mark.parametrize(("installation_id", "body", "field"), [
    ("../x", {"platform": "apns", "push_channel": APNS_TOKEN}, "installation_id"),
    ("ok-1", {"platform": "gcm", "push_channel": FCM_TOKEN}, "platform"),
    ("ok-1", {"platform": "apns", "push_channel": "not-hex"}, "push_channel"),
    ("ok-1", {"platform": "fcmv1", "push_channel": "short"}, "push_channel"),
    ("ok-1", {"platform": "apns", "push_channel": APNS_TOKEN, "locale": "en_US!"}, "locale"),
    ("ok-1", {"platform": "apns", "push_channel": APNS_TOKEN, "tags": ["x"]}, "tags"),
    ("ok-1", {"push_channel": APNS_TOKEN}, "platform"),
])
def test_devices_validates_strictly(push_env, installation_id, body, field):
    async def test(hub: Hub) -> None:
        push_env(hub)
        document = refused(await device("PUT", installation_id, body), 400, "invalid-field")
        assert document["field"] == field
        assert not hub.double.installations(DEFAULT_HUB)
    run_with_hub(test)


def test_devices_needs_a_user_and_push_on(push_env, monkeypatch):
    async def test(hub: Hub) -> None:
        body = {"platform": "apns", "push_channel": APNS_TOKEN}
        refused(await device("PUT", "a-1", body), 503, "push-off")
        push_env(hub)
        refused(await device("POST", "a-1", body), 405, "method-not-allowed")
        monkeypatch.delenv("VOICE_SINGLE_USER_IDENTITY")
        refused(await device("PUT", "a-1", body), 401, "sign-in-required")
    run_with_hub(test)


def test_a_hub_failure_is_503_with_its_retry_after(push_env):
    async def test(hub: Hub) -> None:
        push_env(hub)
        hub.double.add_fault(Fault(status=429, retry_after=9, operation="installation"))
        answer = await device("PUT", "a-2", {"platform": "apns", "push_channel": APNS_TOKEN})
        refused(answer, 503, "push-unavailable")
        assert answer.headers["Retry-After"] == "9"
    run_with_hub(test)


# --- events on the queue ---------------------------------------------------------------


def test_an_event_is_queued_as_base64_json_with_only_the_preview_allowed(push_env):
    owner = new_owner()

    async def test(hub: Hub) -> None:
        for preview, expected in (("none", {}), ("sender", {"from": "+14155550123"}),
                                  ("body", {"from": "+14155550123", "body": "Hi " * 53 + "H"})):
            push_env(hub, PUSH_PREVIEW=preview)
            assert await push.enqueue(app_settings(), owner, "sms", "+14155550123",
                                      "SM" + "0" * 32, body="Hi " * 60)
            async with queue() as client:
                events = [e for _, e in await drain(client) if e["owner"] == owner]
            assert events == [{"v": 1, "owner": owner, "event": "sms", "thread": "+14155550123",
                               "item": "SM" + "0" * 32, "preview": expected}]
    run_with_hub(test)


def test_push_off_queues_nothing(app_env, monkeypatch):
    monkeypatch.setenv("AzureWebJobsStorage", "DefaultEndpointsProtocol=http;AccountName=x;"
                       "AccountKey=eA==;QueueEndpoint=http://127.0.0.1:9/x;")
    app_settings.cache_clear()

    async def test() -> bool:
        try:
            return await push.enqueue(app_settings(), new_owner(), "sms", "+1", "SM1")
        finally:
            await close_clients()
    assert asyncio.run(test()) is False


def test_a_queue_that_cannot_be_reached_is_logged_never_raised(push_env, monkeypatch, caplog):
    async def test(hub: Hub) -> bool:
        push_env(hub, AzureWebJobsStorage="DefaultEndpointsProtocol=http;AccountName=x;"
                 "AccountKey=eA==;QueueEndpoint=http://127.0.0.1:9/x;")
        with caplog.at_level(logging.ERROR, "twilio_functions.push"):
            return await push.enqueue(app_settings(), "user:aad:someone", "failed",
                                      "+14155550123", "SM" + "1" * 32, body="secret words")
    assert run_with_hub(test) is False
    line = next(r.getMessage() for r in caplog.records if "not_enqueued" in r.getMessage())
    assert "SM" + "1" * 32 in line
    assert "+1415" not in line and "someone" not in line and "secret" not in line


# --- push_notify -----------------------------------------------------------------------


def queued(event: dict[str, Any], dequeue_count: int = 1) -> QueueMessage:
    """The message as the runtime hands it to ``main`` (with its trigger metadata)."""
    return QueueMessage(id=secrets.token_hex(8), body=json.dumps(event).encode(),
                        dequeue_count=dequeue_count)


def test_push_notify_sends_each_platform_to_the_owners_devices_only(push_env):
    owner, other = new_owner(), new_owner()

    async def test(hub: Hub) -> None:
        push_env(hub, PUSH_PREVIEW="sender")
        for installation_id, who, platform, channel in (
                ("ios-1", owner, "apns", APNS_TOKEN), ("droid-1", owner, "fcmv1", FCM_TOKEN),
                ("ios-2", other, "apns", APNS_TOKEN)):
            hub.double.put(DEFAULT_HUB, Installation(installation_id, platform, channel,
                                                     (push.owner_tag(who),)).document())
        item = "SM" + secrets.token_hex(16)
        event = push.event_message(app_settings(), owner, "sms", "+14155550123", item, "hi")
        await function_main("push_notify")(queued(event))
        [apple] = hub.double.received("ios-1")
        assert apple["payload"]["aps"]["alert"] == {"title": "Message from +14155550123"}
        assert (apple["payload"]["thread"], apple["payload"]["item"]) == ("+14155550123", item)
        assert apple["headers"]["apns-collapse-id"] == item
        [android] = hub.double.received("droid-1")
        assert android["payload"]["data"] == {"event": "sms",
                                              "thread": "+14155550123", "item": item}
        assert hub.double.received("ios-2") == []
    run_with_hub(test)


def test_push_notify_raises_on_failure_and_logs_no_personal_data(push_env, caplog):
    owner = new_owner()

    async def test(hub: Hub) -> None:
        push_env(hub, PUSH_PREVIEW="body")
        hub.double.add_fault(Fault(status=503))
        event = push.event_message(app_settings(), owner, "failed", "+14155550123",
                                   "SM" + "2" * 32, "private words")
        message = queued(event, dequeue_count=3)
        with caplog.at_level(logging.INFO, "twilio_functions"), \
                pytest.raises(NotificationHubsError):
            await function_main("push_notify")(message)
        [line] = [r.getMessage() for r in caplog.records if "push_notify" in r.getMessage()]
        assert f"id={message.id}" in line and "dequeue_count=3" in line and "status=503" in line
        assert owner not in line and "+1415" not in line and "private" not in line
    run_with_hub(test)


def test_push_notify_refuses_a_message_that_is_no_event(push_env):
    async def test(hub: Hub) -> None:
        push_env(hub)
        with pytest.raises(push.BadEvent):
            await function_main("push_notify")(queued({"v": 2}))
    run_with_hub(test)


def test_the_trigger_reads_the_queue_events_are_put_on():
    from pathlib import Path
    binding = json.loads((Path(__file__).parents[1] / "push_notify" / "function.json")
                         .read_text())["bindings"][0]
    assert binding == {"type": "queueTrigger", "direction": "in", "name": "msg",
                       "queueName": push.QUEUE, "connection": "AzureWebJobsStorage"}
