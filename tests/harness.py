"""Test harness: fake (but recognisable) Twilio credentials, a loopback Twilio
sandbox the real twilio library talks HTTP to, and a way to invoke a
function's ``main`` the way the runtime does (awaited on an event loop).

Imported as ``harness`` (``tests/`` is on pytest's pythonpath): the project's
tests are never a ``tests`` package, a name the runtime's wheel also installs.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import threading
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import parse_qsl, urlencode

import azure.functions as func

from shared.settings import app_settings
from shared.store import close_stores
from shared.twilio_client import close_clients
from twilio_sandbox import Fault, TwilioSandbox

ACCOUNT_SID = "AC" + "a1" * 16
AUTH_TOKEN = "fake-auth-token-s3cr3t-0001"
API_KEY_SID = "SK" + "b2" * 16
API_KEY_SECRET = "fake-api-key-s3cr3t-0002"
FROM_NUMBER = "+15005550006"
SECRETS = (AUTH_TOKEN, API_KEY_SECRET)
APP_URL = "http://localhost:7071/api"
PROBLEM = "urn:twilio-functions:problem:"


class SandboxThread:
    """A Twilio sandbox serving from its own event loop in a background thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.sandbox = TwilioSandbox(
            accounts={ACCOUNT_SID: AUTH_TOKEN},
            api_keys={API_KEY_SID: (API_KEY_SECRET, ACCOUNT_SID)},
            fetch_twiml=False,
        )
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.base_url = self.run(self.sandbox.start(host="127.0.0.1", port=0))

    def run[T](self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)

    def call_soon(self, action: Callable[[], Any]) -> Any:
        async def act() -> Any:
            return action()
        return self.run(act())

    def fault(self, **fields: Any) -> None:
        self.call_soon(lambda: self.sandbox.add_fault(Fault(**fields)))

    def reset(self) -> None:
        self.call_soon(self.sandbox.reset)

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.call_soon(lambda: list(self.sandbox.messages))

    @property
    def calls(self) -> list[dict[str, Any]]:
        return self.call_soon(lambda: list(self.sandbox.calls))

    def close(self) -> None:
        self.run(self.sandbox.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)


def function_main(name: str) -> Callable[[func.HttpRequest], Any]:
    return importlib.import_module(name).main


def invoke(function: str, req: func.HttpRequest) -> func.HttpResponse:
    """Await the function's main on a fresh loop, as the worker does, then close clients
    (Twilio's and the store's, which belong to that loop)."""
    app_settings.cache_clear()  # tests change the environment between invocations

    async def run() -> func.HttpResponse:
        try:
            return await function_main(function)(req)
        finally:
            await close_clients()
            await close_stores()
    return asyncio.run(run())


def request(
    method: str,
    url: str,
    *,
    json_body: Any = None,
    form: dict[str, Any] | list[tuple[str, str]] | None = None,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> func.HttpRequest:
    """An HttpRequest as the runtime builds it: query parsed into params, body bytes."""
    headers = dict(headers or {})
    if json_body is not None:
        body = json.dumps(json_body).encode()
        headers.setdefault("Content-Type", "application/json")
    elif form is not None:
        body = urlencode(form, doseq=True).encode()
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
    params = dict(parse_qsl(url.partition("?")[2], keep_blank_values=True))
    return func.HttpRequest(method, url, headers=headers, params=params, body=body or b"")


def problem(response: func.HttpResponse) -> dict[str, Any]:
    """The RFC 9457 body of a refusal, after checking its media type and status."""
    assert response.mimetype == "application/problem+json", response.get_body()
    document = json.loads(response.get_body())
    assert document["status"] == response.status_code
    assert {"type", "title", "status", "detail"} <= document.keys()
    return document


def refused(response: func.HttpResponse, status: int, kind: str) -> dict[str, Any]:
    """The problem document of a refusal with this status and ``type`` (its slug).

    A status alone passes for the wrong refusal: a bad signature and a
    refused sender are both 403, a bad field and Twilio's refusal both 400.
    """
    document = problem(response)
    assert (response.status_code, document["type"]) == (status, PROBLEM + kind), document
    return document


def created(response: func.HttpResponse) -> dict[str, Any]:
    assert response.status_code == 201, response.get_body()
    assert response.mimetype == "application/json"
    return json.loads(response.get_body())
