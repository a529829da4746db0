"""Push events: what the webhooks learn that the user's devices should hear about.

A webhook that records an event (an SMS in the user's thread, a missed call, a
voicemail, a message of theirs that failed) calls ``enqueue``, which puts one message
on the ``push-events`` Azure Storage queue and returns: Twilio's webhook never waits on
Notification Hubs, and a push that fails is retried by the queue (``push_notify``),
then set aside in ``push-events-poison``, never lost silently.

The message is base64 JSON (``TextBase64EncodePolicy``: the queue trigger reads base64
by default, and ``QueueClient`` would otherwise send plain text):
``{"v": 1, "owner", "event", "thread", "item", "preview"}``, ``preview`` holding only what
``PUSH_PREVIEW`` lets the lock screen show. Push off (no hub configured, or no queue):
nothing is enqueued. Enqueueing never raises: a failure is logged with the item's SID
and the webhook answers Twilio as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any, Literal

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import TextBase64EncodePolicy
from azure.storage.queue.aio import QueueClient

from shared.keys import digest
from shared.per_loop import PerLoop
from shared.settings import QueueConnection, Settings
from shared.store import _credential as storage_credential

logger = logging.getLogger("twilio_functions.push")
# azure-core logs every request at INFO: one line per outcome is enough.
logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)

#: The queue ``push_notify/function.json`` triggers on.
QUEUE = "push-events"
VERSION = 1
Event = Literal["sms", "missed_call", "voicemail", "failed"]
EVENTS: tuple[Event, ...] = ("sms", "missed_call", "voicemail", "failed")
#: How much of a body a ``body`` preview carries: a lock screen shows about two lines.
PREVIEW_CHARS = 160
#: Longest an enqueue may hold the webhook up before it is given up (and logged).
ENQUEUE_TIMEOUT = 2.0
_CLIENT_OPTIONS: dict[str, Any] = {
    "retry_total": 1, "retry_backoff_factor": 0.1, "connection_timeout": 2, "read_timeout": 2,
    "use_env_settings": False,
}


def owner_tag(owner: str) -> str:
    """The one tag of an owner's installations: a digest, since Notification Hubs keeps
    tags unencrypted and they must carry no personal data (Notification Hubs FAQ)."""
    return f"owner:{digest(owner)}"


def event_message(settings: Settings, owner: str, event: Event, thread: str, item: str,
                  body: str | None = None) -> dict[str, Any]:
    """The queue message for one event; ``preview`` only what ``PUSH_PREVIEW`` allows."""
    preview: dict[str, str] = {}
    if settings.push_preview in ("sender", "body"):
        preview["from"] = thread
    if settings.push_preview == "body" and body:
        preview["body"] = body[:PREVIEW_CHARS]
    return {"v": VERSION, "owner": owner, "event": event, "thread": thread, "item": item,
            "preview": preview}


async def enqueue(settings: Settings, owner: str, event: Event, thread: str, item: str,
                  body: str | None = None) -> bool:
    """Queue a push for ``owner``'s devices: ``event`` on ``item`` (its SID) in ``thread``
    (the remote number). False when push is off or the queue failed (logged); never raises.
    """
    if not settings.push_on:
        return False
    connection = settings.queue_connection
    assert connection is not None  # push_on says there is one
    text = json.dumps(event_message(settings, owner, event, thread, item, body))
    try:
        async with asyncio.timeout(ENQUEUE_TIMEOUT):
            await _send(_queues.get(connection), text)
    except (AzureError, OSError, TimeoutError) as error:
        logger.error("push=not_enqueued event=%s item=%s cause=%s: no push for it", event,
                     item, type(error).__name__)
        return False
    return True


async def _send(queue: QueueClient, text: str) -> None:
    """Send it; a queue that does not exist yet is created, once, and the send retried."""
    try:
        await queue.send_message(text)
    except ResourceNotFoundError:
        with contextlib.suppress(ResourceExistsError):
            await queue.create_queue()
        await queue.send_message(text)


def queue_client(connection: QueueConnection, name: str = QUEUE) -> QueueClient:
    """A client of queue ``name`` on ``connection``, writing base64 as the trigger reads."""
    policy = TextBase64EncodePolicy()
    if connection.connection_string:
        return QueueClient.from_connection_string(
            connection.connection_string, name, message_encode_policy=policy,
            **_CLIENT_OPTIONS)
    assert connection.queue_service_uri is not None
    return QueueClient(connection.queue_service_uri, name,
                       credential=storage_credential(connection),  # type: ignore[arg-type]
                       message_encode_policy=policy, **_CLIENT_OPTIONS)


async def _close(queue: QueueClient) -> None:
    await queue.close()


# One per event loop, made once: settings are fixed for the process.
_queues: PerLoop[QueueConnection, QueueClient] = PerLoop(queue_client, _close)
close_queues = _queues.close


class BadEvent(ValueError):
    """A queue message that is not a push event this version writes."""


_TITLES: dict[str, tuple[str, str]] = {  # event: (said alone, said with the sender)
    "sms": ("New message", "Message from {sender}"),
    "missed_call": ("Missed call", "Missed call from {sender}"),
    "voicemail": ("New voicemail", "Voicemail from {sender}"),
    "failed": ("Message not delivered", "Message to {sender} not delivered"),
}


def read_event(text: str) -> dict[str, Any]:
    """The event of a queue message; ``BadEvent`` if it is not one."""
    try:
        event = json.loads(text)
    except ValueError:
        raise BadEvent("not JSON") from None
    if not isinstance(event, dict) or event.get("v") != VERSION:
        raise BadEvent(f"not a version {VERSION} event")
    if event.get("event") not in EVENTS:
        raise BadEvent("unknown event")
    for name in ("owner", "thread", "item"):
        if not isinstance(event.get(name), str) or not event[name]:
            raise BadEvent(f"no {name}")
    preview = event.get("preview") or {}
    if not isinstance(preview, dict) or not all(isinstance(v, str) for v in preview.values()):
        raise BadEvent("bad preview")
    return event


def payloads(event: dict[str, Any]) -> dict[str, tuple[dict[str, Any], dict[str, str]]]:
    """Each platform's native payload and headers for ``event`` (``read_event``'s).

    The app fetches what happened by the thread and item in ``data``; the alert shows
    only the event's ``preview``. The item's SID collapses repeats (a send the queue
    retried after one platform took it): ``apns-collapse-id`` on iOS, the notification
    ``tag`` on Android, so a device shows the push once.
    """
    preview = event.get("preview") or {}
    alone, with_sender = _TITLES[event["event"]]
    title = with_sender.format(sender=preview["from"]) if "from" in preview else alone
    data = {"event": event["event"], "thread": event["thread"], "item": event["item"]}
    alert = {"title": title, **({"body": preview["body"]} if "body" in preview else {})}
    # APNs payload keys: https://developer.apple.com/documentation/usernotifications/generating-a-remote-notification
    apple = {"aps": {"alert": alert, "sound": "default", "thread-id": event["thread"]}, **data}
    apple_headers = {"apns-push-type": "alert", "apns-priority": "10",
                     "apns-collapse-id": event["item"][:64]}
    # FCM v1 message: https://firebase.google.com/docs/reference/fcm/rest/v1/projects.messages
    fcm = {"message": {"notification": alert, "data": data,
                       "android": {"priority": "high", "notification": {"tag": event["item"]}}}}
    return {"apns": (apple, apple_headers), "fcmv1": (fcm, {})}


def describe(event: dict[str, Any]) -> str:
    """The event for a log line: its kind and item's SID, nothing personal."""
    return f"event={event['event']} item={event['item']}"
