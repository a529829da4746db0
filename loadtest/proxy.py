"""One address in front of several local hosts, round robin: ``python -m loadtest.proxy``.

Stands in for Azure's front end when the app has scaled out to several
instances (the ``scale-out`` profile of ``make load``). Loopback only. Each
request goes to the next instance in turn, with its ``Host`` header kept, so
the URLs the app builds for Twilio (a call's TwiML, status callbacks) name the
proxy and Twilio's requests are spread over the instances too.

A request carrying ``X-Loadtest-Instance: <n>`` goes to instance ``n`` instead
(the header is not forwarded): the load client sends a retry through another
instance than its first attempt. Every answer says which instance served it
in the same header, and ``GET /_loadtest/served`` counts the requests each
instance served. An instance that cannot be reached gets a 502 with
``X-Loadtest-Proxy-Error``, which the checks count as a 5xx.

Prints one line, ``loadtest-proxy listening on <URL>``, once it serves; stops
on SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import signal
import sys
from collections.abc import Sequence

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

READY_PREFIX = "loadtest-proxy listening on"
INSTANCE_HEADER = "X-Loadtest-Instance"
ERROR_HEADER = "X-Loadtest-Proxy-Error"
SERVED_PATH = "/_loadtest/served"
#: RFC 9110 section 7.6.1: hop-by-hop fields a proxy does not forward.
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "te", "trailer",
                        "transfer-encoding", "upgrade", "content-length"})
MAX_BODY = 1024 * 1024
TIMEOUT = 60.0


class RoundRobin:
    """The instances, whose turn is next, and how many requests each served."""

    def __init__(self, backends: Sequence[str]) -> None:
        self.backends = [url.rstrip("/") for url in backends]
        self.served = [0] * len(self.backends)
        self._turns = itertools.cycle(range(len(self.backends)))
        self.session: aiohttp.ClientSession | None = None

    def pick(self, pinned: str | None) -> int:
        if pinned is not None and pinned.isdigit() and int(pinned) < len(self.backends):
            return int(pinned)
        return next(self._turns)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.path == SERVED_PATH:
            return web.json_response({"served": self.served, "backends": self.backends})
        index = self.pick(request.headers.get(INSTANCE_HEADER))
        self.served[index] += 1
        headers = CIMultiDict((k, v) for k, v in request.headers.items()
                              if k.lower() not in HOP_BY_HOP and k != INSTANCE_HEADER)
        body = await request.read()
        assert self.session is not None
        try:
            async with self.session.request(
                request.method, f"{self.backends[index]}{request.raw_path}", headers=headers,
                data=body or None, allow_redirects=False,
            ) as answer:
                content = await answer.read()
                forwarded = CIMultiDict((k, v) for k, v in answer.headers.items()
                                        if k.lower() not in HOP_BY_HOP)
                forwarded[INSTANCE_HEADER] = str(index)
                return web.Response(status=answer.status, headers=forwarded, body=content)
        except (aiohttp.ClientError, TimeoutError) as error:
            return web.Response(status=502, text=f"instance {index}: {error!r}",
                                headers={INSTANCE_HEADER: str(index),
                                         ERROR_HEADER: type(error).__name__})


async def serve(backends: Sequence[str], port: int) -> None:
    balancer = RoundRobin(backends)
    # Host is forwarded as the client sent it (the proxy's address): no auto-decompression.
    balancer.session = aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=TIMEOUT), auto_decompress=False,
        connector=aiohttp.TCPConnector(limit=0))
    app = web.Application(client_max_size=MAX_BODY)
    app.router.add_route("*", "/{tail:.*}", balancer.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"{READY_PREFIX} http://127.0.0.1:{bound}", flush=True)
    try:
        await stopping.wait()
    finally:
        with contextlib.suppress(Exception):
            await balancer.session.close()
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.proxy",
                                     description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--backend", action="append", required=True, metavar="URL",
                        help="an instance's origin (loopback http), once per instance")
    parser.add_argument("--port", type=int, default=0, help="port (default 0: a free one)")
    args = parser.parse_args(argv)
    for url in args.backend:
        if not url.startswith(("http://127.0.0.1:", "http://localhost:")):
            parser.error(f"--backend must be a loopback http origin, not {url!r}")
    asyncio.run(serve(args.backend, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
