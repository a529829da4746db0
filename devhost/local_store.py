"""Where a local run keeps the app's rate-limit counters, and clearing them.

Unless a storage account is configured, ``python -m devhost`` keeps the app's
tables in Azurite over ``.azurite/`` (with ``UseDevelopmentStorage=true``, on
Azurite's well-known port), so they outlast restarts, the counters included: a
developer over a limit would stay refused until its window ends.
``clear_limits`` deletes the counters and nothing else (not messages, not
idempotency keys), through ``shared.limits``, which owns their layout. Two
doors lead there: ``python -m devhost --reset-limits`` (``reset_limits_command``,
whether or not ``python -m devhost`` runs) and, while it runs, the host's
``POST /_devhost/reset-limits`` (``reset_limits_control``; the console's "Reset
limits"). A storage account's counters (Azure's) are never cleared from here.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

from devhost import azurite
from devhost.host_routes import Control
from devhost.settings_file import configured
from localhttp.host_policy import is_loopback_address
from localhttp.problem import Refusal

logger = logging.getLogger("devhost")

AZURITE_DATA = ".azurite"
# The app's store, by Azure Functions' connection conventions: STATE_STORAGE wins
# over AzureWebJobsStorage (shared.settings declares them).
CONNECTIONS = ("STATE_STORAGE", "AzureWebJobsStorage")
# Any of these configures the store.
STORAGE_SETTINGS = tuple(f"{prefix}{suffix}" for prefix in CONNECTIONS
                         for suffix in ("", "__tableServiceUri"))
DEVELOPMENT_STORAGE = "usedevelopmentstorage=true"
#: The host control that clears them: ``POST /_devhost/reset-limits``.
RESET_CONTROL = "reset-limits"


class Unreachable(Exception):
    """The store holding the counters did not answer: nothing was cleared."""


@dataclass(frozen=True)
class Counters:
    """Where the app's rate-limit counters are, as ``where`` names it: reached through
    ``connection`` while it runs; else an Azurite to start over ``.azurite/`` on
    ``start_port`` (0: any); ``refusal`` says why they are not cleared from here."""

    where: str
    connection: str | None = None
    start_port: int = 0
    refusal: str | None = None


def find_counters(file_values: dict[str, str], app_dir: Path,
                  running: azurite.Azurite | None = None) -> Counters:
    """Where the app keeps its counters, by its settings; ``running``: this run's Azurite."""
    own = f"{AZURITE_DATA}/"
    if running is not None:
        return Counters(own, running.connection_string)
    for prefix in CONNECTIONS:
        value = configured(prefix, file_values)
        if value.lower() == DEVELOPMENT_STORAGE:
            if azurite.port_in_use(azurite.DEFAULT_PORT):
                return Counters(f"the local emulator ({prefix})", value)
            return Counters(own, start_port=azurite.DEFAULT_PORT)
        if value and _loopback_endpoint(value):
            return Counters(f"the local emulator ({prefix})", value)
        if value or configured(f"{prefix}__tableServiceUri", file_values):
            return Counters("a storage account", refusal=(
                f"{prefix} is a storage account, not the local emulator: its counters are "
                "not cleared from here (each window rolls over on its own)"))
    return Counters(own, azurite.serving(app_dir / AZURITE_DATA))


def _loopback_endpoint(connection_string: str) -> bool:
    """Whether a connection string's table endpoint is on this machine (an emulator)."""
    for part in connection_string.split(";"):
        name, _, value = part.partition("=")
        if name.strip().lower() == "tableendpoint":
            return is_loopback_address(urlsplit(value.strip()).hostname or "")
    return False


async def clear_limits(connection: str) -> int:
    """Delete every rate-limit counter in the store at ``connection``: how many there were."""
    # Imported here: the app's modules load with the host, not with the launcher.
    from shared import limits, store
    from shared.settings import StorageConnection

    client = store.connect(StorageConnection(CONNECTIONS[0], connection, None))
    try:
        return await limits.reset_all(client)
    except store.StoreUnavailable as error:
        raise Unreachable(str(error)) from error
    finally:
        await client.close()


def cleared_line(count: int, where: str) -> str:
    noun = "counter" if count == 1 else "counters"
    return (f"Cleared {count} rate-limit {noun} in {where}; messages and idempotency keys "
            "are kept.")


def reset_limits_control(found: Counters) -> Control:
    """The host's ``POST /_devhost/reset-limits``: clears the counters, answers how many."""
    async def reset() -> web.Response:
        if found.refusal is not None:
            raise Refusal(409, f"Nothing was cleared: {found.refusal}.")
        if found.connection is None:
            raise Refusal(409, "Nothing was cleared: no store runs (Azurite is not "
                          "installed), so the rate limits are off.")
        try:
            count = await clear_limits(found.connection)
        except Unreachable:
            raise Refusal(503, f"Nothing was cleared: {found.where} did not answer.",
                          headers={"Retry-After": "5"}) from None
        line = cleared_line(count, found.where)
        logger.info(line)
        return web.json_response({"cleared": count, "detail": line})

    return reset


def reset_limits_command(file_values: dict[str, str], app_dir: Path) -> int:
    """``python -m devhost --reset-limits``: one line saying what was cleared, and 0.

    Reaches the Azurite that serves ``.azurite/`` if one runs (``python -m
    devhost``'s), else starts one over the folder, clears, and stops it.
    """
    found = find_counters(file_values, app_dir)
    if found.refusal is not None:
        print(f"Nothing was cleared: {found.refusal}.", file=sys.stderr)
        return 1
    data = app_dir / AZURITE_DATA
    if found.connection is None and not data.is_dir():
        print(f"No rate-limit counters to clear: {found.where} does not exist.")
        return 0
    started = None
    try:
        if found.connection is None:
            started = azurite.Azurite.start(location=data, port=found.start_port,
                                            log=data / "azurite.log")
        count = asyncio.run(clear_limits(found.connection or started.connection_string))
    except (azurite.AzuriteError, Unreachable) as error:
        print(f"Nothing was cleared: {found.where} did not answer ({error}).", file=sys.stderr)
        return 1
    finally:
        if started is not None:
            started.stop()
    print(cleared_line(count, found.where))
    return 0
