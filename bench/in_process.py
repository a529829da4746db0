"""send_sms awaited in this process: the app's own work, without the Functions host.

The baseline for the store-on bursts. Direct twilio calls store nothing, while
every send the app answers has written its rows (the delivery, the message,
its sender, the thread's summary; with a key and limits, the reservation and
the counters) and each write costs about a millisecond of CPU in
azure-data-tables, plus Azurite's own on the same cores. Against direct calls,
then, a burst of 200 measures the store's cost more than the app's. Here the
same function, with the same settings, store and Twilio sandbox, is awaited
directly 200 times at once: beside it, the host's burst shows what serving
the app through the Functions host costs when the store is on.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Self

import azure.functions as func

from bench.app import ROOT

SendMain = Callable[[func.HttpRequest], Awaitable[func.HttpResponse]]


class InProcessApp:
    """The repository's send_sms with ``env``'s app settings, in this process.

    The app reads its settings from the environment, so while the context is
    open this process's environment carries ``env``'s and no other declared
    app setting (as ``bench.stack.app_environment`` gives the host's); the
    benchmark's own code reads none of them. Closing restores everything.
    """

    def __init__(self, env: Mapping[str, str], keyed: bool = False) -> None:
        self._env = dict(env)
        self._keyed = keyed
        self._saved: dict[str, str | None] = {}
        self._added_path = False
        self._main: SendMain | None = None

    async def __aenter__(self) -> Self:
        from shared.settings import DECLARATIONS, app_settings

        names = {d.name for d in DECLARATIONS} | set(self._env)
        self._saved = {name: os.environ.get(name) for name in names}
        for name in names - set(self._env):
            os.environ.pop(name, None)
        os.environ.update(self._env)
        if str(ROOT) not in sys.path:
            sys.path.insert(0, str(ROOT))
            self._added_path = True
        app_settings.cache_clear()
        try:
            self._main = importlib.import_module("send_sms").main
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *_: object) -> None:
        """Close the loop's clients (Twilio's, the store's) and restore the environment."""
        from shared.settings import app_settings
        from shared.store import close_stores
        from shared.twilio_client import close_clients

        try:
            await close_clients()
            await close_stores()
        finally:
            for name, value in self._saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            if self._added_path:
                sys.path.remove(str(ROOT))
                self._added_path = False
            app_settings.cache_clear()

    async def send_sms(self, to: str, body: str) -> str:
        """Send as the host's callers do; the SID Twilio gave."""
        if self._main is None:
            raise RuntimeError("use InProcessApp as an async context manager")
        headers = {"Content-Type": "application/json"}
        if self._keyed:
            headers["Idempotency-Key"] = str(uuid.uuid4())
        req = func.HttpRequest("POST", "http://localhost/api/send_sms", headers=headers,
                               params={}, route_params={},
                               body=json.dumps({"to": to, "body": body}).encode())
        response = await self._main(req)
        if response.status_code != 201:
            raise RuntimeError(f"send_sms in process answered {response.status_code}: "
                               f"{response.get_body()[:500]!r}")
        return str(json.loads(response.get_body())["sid"])
