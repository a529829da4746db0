"""What the push tests share: the Notification Hubs double served on the test's loop, and
the app configured for it, the queue on the session's Azurite.

The double (``push_sandbox``) checks each request's SAS token and keeps installations
and the pushes each device received, as Notification Hubs would deliver them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import secrets
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from azure.storage.queue.aio import QueueClient
from storage import storage_env
from stub_server import serve

from push_sandbox.double import DEFAULT_HUB, NotificationHubsDouble
from push_sandbox.server import build_app
from shared import push
from shared.notification_hubs import close_hubs
from shared.settings import app_settings
from shared.store import close_stores

MOUNT = "/notificationhubs/"


@dataclass
class Hub:
    double: NotificationHubsDouble
    connection: str

    def env(self, **more: str) -> dict[str, str]:
        """App settings for push on through this hub, its queue on the shared Azurite."""
        storage = storage_env()["STATE_STORAGE"]
        return {"NOTIFICATION_HUBS_CONNECTION": self.connection,
                "NOTIFICATION_HUBS_HUB": DEFAULT_HUB, "AzureWebJobsStorage": storage, **more}


class HubThread:
    """The double served from its own event loop in a background thread (for tests that
    run the app in another process, or through ``harness.invoke``'s own loops)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self._serving = hub_double()
        self.hub: Hub = self.run(self._serving.__aenter__())

    def run[T](self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=60)

    def call[T](self, action: Callable[[], T]) -> T:
        async def act() -> T:
            return action()
        return self.run(act())

    def close(self) -> None:
        self.run(self._serving.__aexit__(None, None, None))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)


@contextlib.asynccontextmanager
async def hub_double(**options: Any) -> AsyncIterator[Hub]:
    """The double on a free loopback port, mounted where the local host mounts it."""
    double = NotificationHubsDouble(**options)
    root = web.Application()
    root.add_subapp(MOUNT, build_app(double))
    runner, url = await serve(root)
    try:
        yield Hub(double, double.connection_string(url + MOUNT))
    finally:
        await runner.cleanup()


async def close_clients() -> None:
    """What the app keeps per loop: hubs, queues, stores."""
    await close_hubs()
    await push.close_queues()
    await close_stores()
    app_settings.cache_clear()


def new_owner() -> str:
    """An owner nobody else's test uses: events on the shared queue are told apart by it."""
    return f"user:aad:{secrets.token_hex(8)}"


def queue(name: str = push.QUEUE) -> QueueClient:
    settings = app_settings()
    assert settings.queue_connection is not None
    return push.queue_client(settings.queue_connection, name)


async def drain(client: QueueClient) -> list[tuple[Any, dict[str, Any]]]:
    """Every message now on the queue (taken off it), each with its decoded event: the
    base64 JSON is decoded here by hand, as the Functions host would."""
    found = []
    async for message in client.receive_messages(max_messages=32, visibility_timeout=30):
        # The client was made with the encode policy only: content is the raw base64.
        found.append((message, json.loads(base64.b64decode(message.content))))
        await client.delete_message(message)
    return found
