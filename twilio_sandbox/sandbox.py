"""The sandbox: its state (:mod:`.state`) served over HTTP, started and stopped.

It runs inside whatever asyncio loop starts it (a test, the dev host), so tests
read its state directly; another process reads the same state over ``/_sandbox``,
and the console follows it live through :attr:`TwilioSandbox.events`.
"""

import asyncio
import logging
from collections.abc import Sequence
from types import TracebackType
from typing import Self

import aiohttp
from aiohttp import web

from localhttp.host_policy import HostPolicy

from . import source_address
from .server import HOST_ADVICE, build_app
from .state import DEFAULT_HISTORY, SandboxState

log = logging.getLogger(__name__)

#: Seconds stop() lets in-flight requests finish before cancelling them.
SHUTDOWN_GRACE = 1.0

__all__ = ["DEFAULT_HISTORY", "TwilioSandbox"]


class TwilioSandbox(SandboxState):
    """A local stand-in for Twilio's REST API, serving its state on a port of its own.

    Takes :class:`~twilio_sandbox.state.SandboxState`'s arguments.
    """

    _runner: web.AppRunner | None = None
    _server: asyncio.Server | None = None
    _base_url: str | None = None
    _mounted: tuple[tuple[str, web.Application], ...] = ()

    # --- lifecycle -----------------------------------------------------------

    def mount(self, prefix: str, app: web.Application) -> None:
        """Serve ``app`` under ``prefix`` too, from :meth:`start` on: another service's
        double whose pages the console shows (same origin), behind the same Host guard."""
        if self._server is not None:
            raise RuntimeError("mount sub-applications before the sandbox starts")
        self._mounted = (*self._mounted, (prefix, app))

    async def start(self, host: str = "127.0.0.1", port: int = 0,
                    allowed_hosts: Sequence[str] = ()) -> str:
        """Listen on ``host:port`` (0: a free port); return the base URL to use for Twilio's.

        Bound to loopback, it answers loopback ``Host`` names and ``allowed_hosts`` only.
        """
        if self._server is not None:
            raise RuntimeError("the sandbox is already started")
        app = build_app(self, HostPolicy.for_binding(host, allowed_hosts, HOST_ADVICE),
                        mounted=self._mounted)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_GRACE)
        await runner.setup()
        handler_factory = runner.server
        if handler_factory is None:  # pragma: no cover - setup() always makes one
            raise RuntimeError("aiohttp runner made no server")

        def accept() -> asyncio.BaseProtocol:
            # Called once per accepted TCP connection: the count keep-alive tests read.
            self.connections_accepted += 1
            return handler_factory()

        try:
            server = await asyncio.get_running_loop().create_server(accept, host, port)
        except BaseException:
            await runner.cleanup()
            raise
        self._runner, self._server = runner, server
        # From an address of its own, so the app counts the console's traffic apart.
        self._session = aiohttp.ClientSession(connector=source_address.connector(),
                                              trace_configs=[self.webhooks.trace_config()])
        bound_host, bound_port = server.sockets[0].getsockname()[:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        self._base_url = f"http://{shown}:{bound_port}"
        log.info("Twilio sandbox serving %s", self._base_url)
        return self._base_url

    async def stop(self) -> None:
        """Stop listening, finish or cancel what is under way, release everything."""
        server, runner, session = self._server, self._runner, self._session
        self._server = self._runner = self._session = None
        if server is None:
            return
        self.events.close()  # ends the console's streams, which would hold up the runner
        server.close()
        if runner is not None:
            await runner.cleanup()  # in-flight requests get SHUTDOWN_GRACE seconds
        await self._cancel_tasks()
        server.close_clients()
        await server.wait_closed()
        if session is not None:
            await session.close()
        log.info("Twilio sandbox at %s stopped", self._base_url)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """``http://host:port``: put it where the app would use ``https://api.twilio.com``."""
        if self._base_url is None:
            raise RuntimeError("the sandbox is not started")
        return self._base_url

