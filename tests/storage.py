"""The tests' Table Storage: real Azurite, in memory, on a free port.

One instance serves the whole session (started on first use, stopped at
exit); a test that stops the store starts its own. Not installed is a
failure, never a skip: `make test` installs it (devhost/azurite/install.sh).
"""

from __future__ import annotations

import asyncio
import atexit
import functools
from collections.abc import Coroutine
from typing import Any

from devhost.azurite import Azurite, is_installed
from shared import store as store_module

NOT_INSTALLED = ("Azurite is not installed: run `sh devhost/azurite/install.sh` (make test "
                 "does); it needs node and npm")


def start_azurite() -> Azurite:
    assert is_installed(), NOT_INSTALLED
    return Azurite.start()


@functools.cache
def shared_azurite() -> Azurite:
    azurite = start_azurite()
    atexit.register(azurite.stop)
    return azurite


def storage_env() -> dict[str, str]:
    """The app settings that point an app at the shared Azurite."""
    return {"STATE_STORAGE": shared_azurite().connection_string}


def run[T](coroutine: Coroutine[Any, Any, T]) -> T:
    """On a fresh loop, as the worker's; the loop's store is closed after."""
    async def wrapped() -> T:
        try:
            return await coroutine
        finally:
            await store_module.close_stores()
    return asyncio.run(wrapped())
