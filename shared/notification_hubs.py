"""Azure Notification Hubs, spoken over its REST API: the only module that knows it.

Microsoft ships no data-plane SDK for Python ("How to use Notification Hubs from
Python" is a sample, "not the officially supported ... Python SDK"; the PyPI
ports are unmaintained), so the three operations the app needs are written here
against the documented REST API, as ``@azure/notification-hubs`` (Microsoft's
maintained SDK, for JavaScript) makes them:

- ``PUT|GET|DELETE /{hub}/installations/{id}``: a device's installation ("Create or
  overwrite an installation", "Read an installation", "Delete an installation");
- ``POST /{hub}/messages/`` with ``ServiceBusNotification-Format`` and
  ``ServiceBusNotification-Tags``: one send to every device with a tag ("Send a
  native notification"); 201 (the REST page says 200: both are taken).

Every request carries a Shared Access Signature ("Common concepts": HMAC-SHA256 of the
URL-encoded resource URI and the expiry, keyed by the rule's key), made once and reused
until ``RENEW_BEFORE`` seconds before it expires. Neither the key nor a token is ever
logged or put in an exception's message.

``API_VERSION`` is the one ``@azure/notification-hubs`` sends (``api-version=2020-06``
with ``x-ms-version: 2020-06``, src/utils/constants.ts): the versions the REST pages
show (2015-01) answer 403 where newer ones answer 429 with ``Retry-After`` for
throttling (azure-notificationhubs-dotnet issue 224), which the queue can act on.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote, urlsplit

from aiohttp import ClientError, ClientSession, ClientTimeout, TCPConnector

from shared.per_loop import PerLoop

API_VERSION = "2020-06"
#: How long a SAS token is valid (the Node SDK's hour), and when a new one is made.
TOKEN_SECONDS = 3600
RENEW_BEFORE = 300
#: Each request's bound, in seconds: a send that hangs is retried by the queue.
REQUEST_TIMEOUT = 10.0

#: Hosts an ``http://`` endpoint may name (the local double): loopback as written. Not
#: ``shared.settings``'s: settings parses connection strings with this module.
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})

Platform = Literal["apns", "fcmv1"]
#: ``ServiceBusNotification-Format`` of each platform's native payload.
FORMATS: dict[str, str] = {"apns": "apple", "fcmv1": "fcmv1"}


class NotificationHubsError(Exception):
    """Notification Hubs refused or could not be reached: ``status`` is its HTTP status
    (None: no answer), ``retry_after`` its ``Retry-After`` in seconds (429, 503)."""

    def __init__(self, operation: str, status: int | None, retry_after: int | None = None) -> None:
        answered = f"answered {status}" if status is not None else "could not be reached"
        super().__init__(f"Notification Hubs {answered} to {operation}")
        self.operation = operation
        self.status = status
        self.retry_after = retry_after


@dataclass(frozen=True)
class HubConnection:
    """A parsed SAS connection string: the namespace's base URL and the rule signing."""

    endpoint: str  # https://<namespace>.servicebus.windows.net/ (ends with /)
    key_name: str
    key: str = field(repr=False)


def parse_connection(raw: str) -> HubConnection:
    """``Endpoint=sb://...;SharedAccessKeyName=...;SharedAccessKey=...``; ``ValueError``
    naming what is wrong, never repeating the text (it holds the key).

    ``sb://`` is reached as ``https://`` ("Common concepts"); an ``http://`` endpoint is
    taken only on a loopback host (the local double).
    """
    parts: dict[str, str] = {}
    for part in raw.split(";"):
        name, equals, value = part.partition("=")
        if equals:
            parts[name.strip().lower()] = value.strip()
    endpoint, key_name, key = (parts.get("endpoint"), parts.get("sharedaccesskeyname"),
                               parts.get("sharedaccesskey"))
    if not endpoint or not key_name or not key:
        raise ValueError("must be a Notification Hubs connection string with Endpoint, "
                         "SharedAccessKeyName and SharedAccessKey")
    try:
        url = urlsplit(endpoint)
    except ValueError:
        url = None
    if url is None or not url.hostname or url.username or url.query or url.fragment:
        raise ValueError("must have an Endpoint like sb://<namespace>.servicebus.windows.net/")
    if url.scheme not in ("sb", "https") and not (url.scheme == "http"
                                                  and url.hostname in LOOPBACK_HOSTS):
        raise ValueError("must have an sb:// or https:// Endpoint (http:// only on loopback)")
    scheme = "https" if url.scheme == "sb" else url.scheme
    path = url.path if url.path.endswith("/") else url.path + "/"
    return HubConnection(f"{scheme}://{url.netloc}{path}", key_name, key)


@dataclass(frozen=True)
class Installation:
    """A device as Notification Hubs keeps it (its Installation resource)."""

    installation_id: str
    platform: Platform
    push_channel: str
    tags: tuple[str, ...] = ()

    def document(self) -> dict[str, Any]:
        return {"installationId": self.installation_id, "platform": self.platform,
                "pushChannel": self.push_channel, "tags": list(self.tags)}


class NotificationHub:
    """One hub, through one aiohttp session (kept per event loop: ``hub_for``)."""

    def __init__(self, connection: HubConnection, hub: str, session: ClientSession) -> None:
        self._connection = connection
        self._resource = f"{connection.endpoint}{quote(hub, safe='')}"
        self._session = session
        self._token: tuple[str, float] | None = None

    async def get_installation(self, installation_id: str) -> Installation | None:
        """The installation with this ID; None if the hub has none."""
        status, body, _ = await self._request("GET", self._installation(installation_id),
                                              "read installation", missing=(404, 410))
        if status in (404, 410):
            return None
        try:
            document = json.loads(body)
            tags = document.get("tags") or []
            return Installation(str(document["installationId"]),
                                str(document.get("platform", "")).lower(),  # type: ignore[arg-type]
                                str(document.get("pushChannel", "")),
                                tuple(str(tag) for tag in tags))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise NotificationHubsError("read installation", status) from None

    async def put_installation(self, installation: Installation) -> None:
        """Create or overwrite it (idempotent)."""
        await self._request("PUT", self._installation(installation.installation_id),
                            "write installation", body=installation.document())

    async def delete_installation(self, installation_id: str) -> None:
        """Delete it; one already gone is no error (Notification Hubs answers 204 alike)."""
        await self._request("DELETE", self._installation(installation_id),
                            "delete installation", missing=(404, 410))

    async def send(self, tags: str, platform: Platform, payload: Mapping[str, Any],
                   headers: Mapping[str, str] | None = None) -> str | None:
        """Send the platform's native ``payload`` to the devices matching the tag
        expression ``tags``; the notification ID when the hub tells it (Standard tier)."""
        _, _, location = await self._request(
            "POST", f"{self._resource}/messages/", "send", body=payload,
            headers={"ServiceBusNotification-Format": FORMATS[platform],
                     "ServiceBusNotification-Tags": tags, **(headers or {})})
        return location.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0] if location else None

    async def close(self) -> None:
        await self._session.close()

    def _installation(self, installation_id: str) -> str:
        return f"{self._resource}/installations/{quote(installation_id, safe='')}"

    async def _request(self, method: str, url: str, operation: str, *,
                       body: Mapping[str, Any] | None = None,
                       headers: Mapping[str, str] | None = None,
                       missing: tuple[int, ...] = ()) -> tuple[int, bytes, str | None]:
        sent = {"Authorization": self._sas_token(), "x-ms-version": API_VERSION,
                **(headers or {})}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            sent["Content-Type"] = "application/json;charset=utf-8"
        try:
            async with self._session.request(
                    method, url, params={"api-version": API_VERSION}, data=data, headers=sent,
                    timeout=ClientTimeout(total=REQUEST_TIMEOUT)) as answer:
                content = await answer.read()
                status = answer.status
                retry_after = _seconds(answer.headers.get("Retry-After"))
                location = answer.headers.get("Location")
        except (ClientError, OSError, TimeoutError):
            raise NotificationHubsError(operation, None) from None
        if 200 <= status < 300 or status in missing:
            return status, content, location
        raise NotificationHubsError(operation, status, retry_after)

    def _sas_token(self) -> str:
        """The cached token, or a new one when it is near expiry."""
        now = time.time()
        if self._token is None or self._token[1] - now < RENEW_BEFORE:
            expiry = int(now) + TOKEN_SECONDS
            self._token = (sas_token(self._resource, self._connection, expiry), expiry)
        return self._token[0]


def sas_token(resource: str, connection: HubConnection, expiry: int) -> str:
    """``SharedAccessSignature sr=...&sig=...&se=...&skn=...`` for ``resource`` (the hub's
    URL), as Microsoft's REST sample makes it: the URI lower-cased and URL-encoded, signed
    with ``<uri>\\n<expiry>`` (azure-notificationhubs-samples, NotificationHub.py)."""
    uri = quote(resource, safe="").lower()
    digest = hmac.new(connection.key.encode(), f"{uri}\n{expiry}".encode(),
                      hashlib.sha256).digest()
    signature = quote(base64.b64encode(digest).decode(), safe="")
    return (f"SharedAccessSignature sr={uri}&sig={signature}&se={expiry}"
            f"&skn={quote(connection.key_name, safe='')}")


def _seconds(value: str | None) -> int | None:
    return int(value) if value and value.isascii() and value.isdecimal() else None


@dataclass(frozen=True)
class _HubKey:
    connection: str = field(repr=False)
    hub: str


def _new_hub(key: _HubKey) -> NotificationHub:
    session = ClientSession(connector=TCPConnector(limit=20, keepalive_timeout=60))
    return NotificationHub(parse_connection(key.connection), key.hub, session)


async def _close(hub: NotificationHub) -> None:
    await hub.close()


# One per event loop, made once: settings are fixed for the process.
_hubs: PerLoop[_HubKey, NotificationHub] = PerLoop(_new_hub, _close)
close_hubs = _hubs.close


def hub_for(connection: str | None, hub: str | None) -> NotificationHub | None:
    """The running loop's hub (``NOTIFICATION_HUBS_CONNECTION``, ``NOTIFICATION_HUBS_HUB``);
    None when Notification Hubs is not configured."""
    if not connection or not hub:
        return None
    return _hubs.get(_HubKey(connection, hub))
