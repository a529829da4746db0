"""The Twilio REST client: one per event loop, reused.

A client owns an aiohttp session, so reusing it keeps connections to Twilio
alive between invocations instead of paying a TCP and TLS handshake on every
request. twilio-python has no base-URL option, so ``RoutedHttpClient``
rewrites Twilio's origin to ``TWILIO_API_BASE_URL`` (local sandbox, mocks)
and applies ``TWILIO_TIMEOUT_SECONDS``, which the library's async client
otherwise ignores.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import Any

from aiohttp import (
    ClientError,
    ClientRequest,
    ClientSession,
    ClientTimeout,
    TCPConnector,
    encode_basic_auth,
)
from aiohttp.connector import Connection
from aiohttp.tracing import Trace
from twilio.base.version import Version
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from shared.per_loop import PerLoop
from shared.settings import Settings
from shared.twilio_errors import NotSent

TWILIO_ORIGIN = "https://api.twilio.com"
POOL_SIZE = 100  # connections to Twilio per event loop; more requests wait for one

# twilio logs five INFO lines per request (never the Authorization header);
# kept at WARNING so Application Insights gets one outcome line per request.
# Set this logger to INFO to trace Twilio requests.
_request_logger = logging.getLogger("twilio_functions.twilio_http")
_request_logger.setLevel(logging.WARNING)


# Set on the task of a request in flight once it holds a connection: aiohttp
# writes the request at once, on the same task, so from then on it may be sent.
_connected: ContextVar[list[bool]] = ContextVar("twilio_request_connected")


class _SendingConnector(TCPConnector):
    """aiohttp's connector, noting when a request gets its connection (pooled or new)."""

    async def connect(self, req: ClientRequest, traces: list[Trace],
                      timeout: ClientTimeout) -> Connection:  # noqa: ASYNC109 (aiohttp names it)
        connection = await super().connect(req, traces, timeout)
        if (connected := _connected.get(None)) is not None:
            connected[0] = True
        return connection


class RoutedHttpClient(AsyncTwilioHttpClient):
    """twilio's async HTTP client, sent to another origin and bounded by a timeout.

    It also knows whether a failed request was sent at all: one that timed out
    waiting for a pooled connection, or whose connection was refused, raises
    ``NotSent``, so the client is not told it "may still have been created".
    aiohttp cannot say so by itself: its total timeout raises the same
    ``TimeoutError`` while waiting for the pool as while waiting for Twilio.
    (A connector hook, not aiohttp's tracing: tracing awaits a dozen signals
    per request, about 10% of a loopback request's time.)
    """

    def __init__(self, base_url: str, timeout: float) -> None:
        super().__init__(pool_connections=False, timeout=timeout, logger=_request_logger)
        self.base_url = base_url.rstrip("/")
        # The timeout goes on each request (below): twilio passes timeout=None
        # per request, which aiohttp reads as "none", overriding a session's.
        self.session = ClientSession(
            connector=_SendingConnector(limit=POOL_SIZE, keepalive_timeout=60))

    async def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        if url.startswith(TWILIO_ORIGIN):
            url = self.base_url + url[len(TWILIO_ORIGIN):]
        kwargs["timeout"] = kwargs.get("timeout") or self.timeout
        if auth := kwargs.pop("auth", None):  # as a header: aiohttp deprecates BasicAuth
            kwargs["headers"] = {**(kwargs.get("headers") or {}),
                                 "Authorization": encode_basic_auth(*auth)}
        connected = [False]
        token = _connected.set(connected)
        try:
            response = await super().request(method, url, *args, **kwargs)
        except (TimeoutError, ClientError, OSError) as error:
            if connected[0]:
                raise
            raise NotSent("the request was never sent") from error
        finally:
            _connected.reset(token)
        if response.status_code == 429:
            # twilio's exceptions drop the response headers; keep Retry-After.
            error = Version.exception(method, url, response, "Too many requests")
            error.retry_after = response.headers.get("Retry-After")
            raise error
        return response


def _new_client(settings: Settings) -> Client:
    return Client(
        username=settings.api_key_sid or settings.account_sid,
        password=settings.api_key_secret or settings.auth_token,
        account_sid=settings.account_sid,
        http_client=RoutedHttpClient(settings.api_base_url, settings.timeout_seconds),
    )


async def _close(client: Client) -> None:
    await client.http_client.close()


# One per event loop, made once: settings are fixed for the process.
_clients: PerLoop[Settings, Client] = PerLoop(_new_client, _close)
client_for = _clients.get
close_clients = _clients.close
