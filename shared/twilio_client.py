"""The Twilio REST client: one per event loop and credentials, reused.

A client owns an aiohttp session, so reusing it keeps connections to Twilio
alive between invocations instead of paying a TCP and TLS handshake on every
request. twilio-python has no base-URL option, so ``RoutedHttpClient``
rewrites Twilio's origin to ``TWILIO_API_BASE_URL`` (local sandbox, mocks)
and applies ``TWILIO_TIMEOUT_SECONDS``, which the library's async client
otherwise ignores.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import Any

from aiohttp import ClientSession, ClientTimeout, TCPConnector, encode_basic_auth
from twilio.base.version import Version
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from shared.settings import Settings

TWILIO_ORIGIN = "https://api.twilio.com"

# twilio logs five INFO lines per request (never the Authorization header);
# kept at WARNING so Application Insights gets one outcome line per request.
# Set this logger to INFO to trace Twilio requests.
_request_logger = logging.getLogger("twilio_functions.twilio_http")
_request_logger.setLevel(logging.WARNING)

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, ...], Client]] = (
    weakref.WeakKeyDictionary()
)


class RoutedHttpClient(AsyncTwilioHttpClient):
    """twilio's async HTTP client, sent to another origin and bounded by a timeout."""

    def __init__(self, base_url: str, timeout: float) -> None:
        super().__init__(pool_connections=False, timeout=timeout, logger=_request_logger)
        self.base_url = base_url.rstrip("/")
        self.session = ClientSession(
            connector=TCPConnector(limit=100, keepalive_timeout=60),
            timeout=ClientTimeout(total=timeout),
        )

    async def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        if url.startswith(TWILIO_ORIGIN):
            url = self.base_url + url[len(TWILIO_ORIGIN):]
        kwargs["timeout"] = kwargs.get("timeout") or self.timeout
        if auth := kwargs.pop("auth", None):  # as a header: aiohttp deprecates BasicAuth
            kwargs["headers"] = {**(kwargs.get("headers") or {}),
                                 "Authorization": encode_basic_auth(*auth)}
        response = await super().request(method, url, *args, **kwargs)
        if response.status_code == 429:
            # twilio's exceptions drop the response headers; keep Retry-After.
            error = Version.exception(method, url, response, "Too many requests")
            error.retry_after = response.headers.get("Retry-After")
            raise error
        return response


def client_for(settings: Settings) -> Client:
    """The shared client for these settings on the running event loop."""
    loop = asyncio.get_running_loop()
    key = (
        settings.account_sid,
        settings.api_key_sid or settings.account_sid,
        settings.api_key_secret or settings.auth_token,
        settings.api_base_url,
        str(settings.timeout_seconds),
    )
    per_loop = _clients.setdefault(loop, {})
    client = per_loop.get(key)
    if client is None:
        _retire(per_loop)
        client = Client(
            username=key[1],
            password=key[2],
            account_sid=settings.account_sid,
            http_client=RoutedHttpClient(settings.api_base_url, settings.timeout_seconds),
        )
        per_loop[key] = client
    return client


def _retire(per_loop: dict[tuple[str, ...], Client]) -> None:
    """Close clients of replaced settings (rotated credentials) once they are idle."""
    for old in per_loop.values():
        old_http = old.http_client
        if isinstance(old_http, RoutedHttpClient):
            _background.add(task := asyncio.ensure_future(old_http.close()))
            task.add_done_callback(_background.discard)
    per_loop.clear()


_background: set[asyncio.Future[None]] = set()


async def close_clients() -> None:
    """Close this loop's clients (host shutdown, tests): their sessions own sockets."""
    for client in _clients.pop(asyncio.get_running_loop(), {}).values():
        if isinstance(client.http_client, RoutedHttpClient):
            await client.http_client.close()
