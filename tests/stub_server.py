"""A stand-in HTTP server for tests: an aiohttp app on a free loopback port.

What the sandbox talks to in a test (an app, a media host, the host's reset
control) is served this one way; the caller cleans the runner up.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web


async def serve(app: web.Application, **runner_options: Any) -> tuple[web.AppRunner, str]:
    """``app`` listening on 127.0.0.1, a free port: its runner and ``http://host:port``."""
    runner = web.AppRunner(app, **{"access_log": None, **runner_options})
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"
