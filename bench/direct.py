"""The baseline Twilio requests: the twilio library talking straight to the sandbox.

What a caller would pay with no Functions host and no app in between: the
same Messages and Calls requests ``send_sms`` and ``make_call`` make, through
twilio's own async client with one pooled session, from this process.
"""

from __future__ import annotations

from typing import Any

from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from bench.stack import VALID_FROM, Account

TWILIO_ORIGIN = "https://api.twilio.com"


class SandboxAsyncClient(AsyncTwilioHttpClient):
    """twilio's async HTTP client (pooled session), sent to the sandbox's origin."""

    def __init__(self, base_url: str) -> None:
        super().__init__(pool_connections=True)
        self.base_url = base_url.rstrip("/")

    async def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        if url.startswith(TWILIO_ORIGIN):
            url = self.base_url + url[len(TWILIO_ORIGIN):]
        return await super().request(method, url, *args, **kwargs)


class DirectTwilio:
    """One twilio client for the whole run, like a long-lived service would keep."""

    def __init__(self, account: Account, sandbox_url: str) -> None:
        self._http = SandboxAsyncClient(sandbox_url)
        self._client = Client(account.sid, account.token, http_client=self._http)

    async def send_sms(self, to: str, body: str) -> None:
        await self._client.messages.create_async(to=to, from_=VALID_FROM, body=body)

    async def make_call(self, to: str, twiml_url: str) -> None:
        await self._client.calls.create_async(to=to, from_=VALID_FROM, url=twiml_url,
                                              method="POST")

    async def close(self) -> None:
        await self._http.close()
