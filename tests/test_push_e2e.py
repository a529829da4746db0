"""Push end to end through the local host's pieces: the app in `python -m devhost.host`
(HTTP functions and the push_notify queue trigger over Azurite's Queue service), the
Twilio sandbox, and the Notification Hubs double.

A device registers through `devices`; Twilio's webhooks (an SMS reply, a failed
message) queue an event; the host runs push_notify, which pushes to the owner's
devices and nobody else's; Notification Hubs failing is retried by the queue, then
set aside in the poison queue, logged with the message's id and no personal data.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from azure.core.exceptions import ResourceNotFoundError
from harness import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER
from live import ROOMY_LIMITS
from push_support import HubThread
from storage import shared_azurite
from test_devhost_host import HostProcess
from twilio.request_validator import RequestValidator
from unique import number

from push_sandbox.double import DEFAULT_HUB
from push_sandbox.faults import Fault
from shared import push
from shared.notification_hubs import Installation
from shared.settings import QueueConnection

PROJECT = Path(__file__).resolve().parents[1]
APNS_TOKEN = "cd" * 32
SINGLE_USER = "developer"
#: The single user of a setup without sign-in: whose threads and devices these are.
OWNER = "anonymous"
#: A wait for what the host does on its own (poll, run, retry): generous on a busy machine.
WAIT = 60.0


@pytest.fixture(scope="module")
def hub() -> Iterator[HubThread]:
    running = HubThread()
    yield running
    running.close()


@pytest.fixture
def host(app_env, hub, tmp_path, monkeypatch) -> Iterator[HostProcess]:
    hub.call(hub.hub.double.reset)
    for name, value in {**hub.hub.env(), "VOICE_SINGLE_USER_IDENTITY": SINGLE_USER,
                        "AzureWebJobsStorage": shared_azurite().connection_string,
                        "ALLOWED_COUNTRIES": "US", **ROOMY_LIMITS}.items():
        monkeypatch.setenv(name, value)
    running = HostProcess(PROJECT, log_dir=tmp_path)
    try:
        yield running
    finally:
        running.stop()


def register(host: HostProcess, installation_id: str) -> None:
    answer = httpx.put(f"{host.base_url}/api/devices/{installation_id}",
                       json={"platform": "apns", "push_channel": APNS_TOKEN}, timeout=30)
    assert answer.status_code == 204, answer.text


def someone_elses_device(hub: HubThread, installation_id: str) -> None:
    """Another user's installation, as the hub keeps it."""
    installation = Installation(installation_id, "apns", APNS_TOKEN,
                                (push.owner_tag("user:aad:" + secrets.token_hex(6)),))
    hub.call(lambda: hub.hub.double.put(DEFAULT_HUB, installation.document()))


def texted(host: HostProcess, remote: str) -> str:
    """The single user texts ``remote`` (the reply is then theirs): the message SID."""
    answer = httpx.post(f"{host.base_url}/api/send_sms", json={"to": remote, "body": "Hello"},
                        timeout=30)
    assert answer.status_code == 201, answer.text
    return answer.json()["sid"]


def reply(host: HostProcess, remote: str, body: str) -> str:
    """``remote`` answers: Twilio's incoming-message webhook, signed: the message SID."""
    sid = "SM" + secrets.token_hex(16)
    url = f"{host.base_url}/api/twiml"
    params = {"MessageSid": sid, "SmsSid": sid, "AccountSid": ACCOUNT_SID, "From": remote,
              "To": FROM_NUMBER, "Body": body, "NumMedia": "0"}
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, params)
    answer = httpx.post(url, data=params, headers={"X-Twilio-Signature": signature},
                        timeout=30)
    assert answer.status_code == 200, answer.text
    return sid


def pushes(hub: HubThread, installation_id: str, count: int = 1) -> list[dict]:
    """The device's pushes once it has ``count``: the host polls, runs and retries."""
    async def wait() -> list[dict]:
        async with asyncio.timeout(WAIT):
            return await hub.hub.double.wait_for_pushes(installation_id, count)
    return hub.run(wait())


def test_a_reply_pushes_once_to_its_owners_device_and_nobody_elses(host, hub):
    mine, theirs = f"mine-{secrets.token_hex(4)}", f"theirs-{secrets.token_hex(4)}"
    register(host, mine)
    someone_elses_device(hub, theirs)
    remote = number()
    texted(host, remote)
    sid = reply(host, remote, "See you at 8 in Zanzibar")
    [received] = pushes(hub, mine)
    assert received["payload"]["item"] == sid and received["payload"]["thread"] == remote
    assert received["payload"]["aps"]["alert"] == {"title": "New message"}  # PUSH_PREVIEW none
    assert hub.call(lambda: hub.hub.double.received(theirs)) == []
    assert "Zanzibar" not in host.stderr() and remote not in host.stderr()


def test_a_message_that_failed_pushes_to_its_sender(app_env, host, hub):
    device = f"mine-{secrets.token_hex(4)}"
    register(host, device)
    remote = number()
    sid = texted(host, remote)
    # The carrier refuses it: the sandbox reports it to status_callback, as Twilio would.
    httpx.post(f"{app_env.base_url}/_sandbox/messages/{sid}/status",
               json={"status": "failed", "error_code": 30008}, timeout=30).raise_for_status()
    [received] = pushes(hub, device)
    assert (received["payload"]["item"], received["payload"]["thread"]) == (sid, remote)
    assert received["payload"]["aps"]["alert"] == {"title": "Message not delivered"}


def test_a_push_notification_hubs_refused_once_is_delivered_once_after_the_retry(host, hub):
    device = f"mine-{secrets.token_hex(4)}"
    register(host, device)
    remote = number()
    texted(host, remote)
    hub.call(lambda: hub.hub.double.add_fault(Fault(status=503, count=1)))
    sid = reply(host, remote, "Are we on?")
    [received] = pushes(hub, device)
    assert received["payload"]["item"] == sid
    # Once the retried message is gone from the queue, no run can push again: exactly one.
    wait_for_empty_queue()
    assert len(hub.call(lambda: hub.hub.double.received(device))) == 1


def test_a_push_notification_hubs_always_refuses_ends_in_the_poison_queue(host, hub):
    device = f"mine-{secrets.token_hex(4)}"
    register(host, device)
    remote = number()
    texted(host, remote)
    hub.call(lambda: hub.hub.double.add_fault(Fault(status=503, count=None)))
    try:
        sid = reply(host, remote, "Private words")
        poisoned = wait_for_poison(sid)
    finally:
        hub.call(hub.hub.double.clear_faults)
    assert poisoned["owner"] == OWNER and poisoned["item"] == sid
    assert hub.call(lambda: hub.hub.double.received(device)) == []
    log = host.stderr()
    runs = [line for line in log.splitlines()
            if "function=push_notify" in line and f"item={sid}" in line]
    assert len(runs) == 5, log[-3000:]  # the host's default maxDequeueCount
    assert all("id=" in line and "status=503" in line for line in runs)
    assert "Private" not in log and remote not in log


def wait_for_empty_queue() -> None:
    """Until ``push-events`` holds no message, visible or not (each deleted once it ran)."""
    connection = QueueConnection("AzureWebJobsStorage", shared_azurite().connection_string)

    async def count() -> int:
        async with push.queue_client(connection, push.QUEUE) as queue:
            return (await queue.get_queue_properties()).approximate_message_count

    deadline = time.monotonic() + WAIT  # only against a hung host
    while asyncio.run(count()):
        if time.monotonic() > deadline:
            pytest.fail(f"{push.QUEUE} never emptied")
        time.sleep(0.2)


def wait_for_poison(sid: str) -> dict:
    """The poison queue's event for the item ``sid`` (taken off the queue)."""
    connection = QueueConnection("AzureWebJobsStorage", shared_azurite().connection_string)

    async def look() -> dict | None:
        async with push.queue_client(connection, f"{push.QUEUE}-poison") as poison:
            try:
                async for message in poison.receive_messages(max_messages=32):
                    event = json.loads(base64.b64decode(message.content))
                    if event.get("item") == sid:
                        await poison.delete_message(message)
                        return event
            except ResourceNotFoundError:
                return None
        return None

    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        found = asyncio.run(look())
        if found is not None:
            return found
        time.sleep(0.5)
    pytest.fail(f"no poison message for {sid}")
