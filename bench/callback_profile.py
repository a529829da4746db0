"""Where status_callback's CPU goes: its code run in this process under cProfile.

The repository's ``status_callback`` (signature check, report, one ETag-checked write
over the row the instance remembers) on the benchmark's store, without the host, so
the profile is the function's own: each function's own time summed by the package it
is in, per callback.
"""

from __future__ import annotations

import cProfile
import pstats
import secrets
import time
from collections import Counter
from collections.abc import Mapping
from urllib.parse import urlencode

import azure.functions as func
from twilio.request_validator import RequestValidator

from bench.in_process import InProcessApp

CALLBACKS = 1000
#: Packages by a piece of their path, first match wins.
PACKAGES = (("azure/data/tables", "azure-data-tables"), ("azure/core", "azure-core"),
            ("aiohttp", "aiohttp"), ("yarl", "aiohttp"), ("multidict", "aiohttp"),
            ("/shared/", "the app (shared/)"), ("status_callback", "the app (shared/)"),
            ("twilio", "twilio (signature)"), ("json", "json"), ("asyncio", "asyncio"),
            ("select", "asyncio"), ("socket", "sockets (system calls)"),
            ("urllib", "urllib"), ("logging", "logging"), ("hmac", "hashlib/hmac"),
            ("_hashlib", "hashlib/hmac"), ("datetime", "datetime"), ("isoformat", "datetime"))


async def profile(env: Mapping[str, str]) -> tuple[float, dict[str, float]]:
    """Wall seconds per callback, and CPU seconds per callback by package."""
    async with InProcessApp(env):
        import importlib

        from shared import deliveries
        from shared.identity import ANONYMOUS
        from shared.settings import app_settings
        from shared.threads import owner_key

        main = importlib.import_module("status_callback").main
        sid = "CA" + secrets.token_hex(16)
        await deliveries.remember_sent(app_settings(), ANONYMOUS, "call",
                                       {"sid": sid, "to": "+14155552671", "status": "queued",
                                        "from": env["TWILIO_FROM_NUMBER"]})
        key = owner_key(ANONYMOUS.owner)
        url = f"http://localhost/api/status_callback?owner={key}"
        validator = RequestValidator(env["TWILIO_AUTH_TOKEN"])

        def request(number: int) -> func.HttpRequest:
            params = {"AccountSid": env["TWILIO_ACCOUNT_SID"], "CallSid": f"{sid}",
                      "CallStatus": "in-progress", "SequenceNumber": str(number),
                      "ApiVersion": "2010-04-01", "Direction": "outbound-api"}
            return func.HttpRequest("POST", url, params={"owner": key}, headers={
                "X-Twilio-Signature": validator.compute_signature(url, params),
                "I-Twilio-Idempotency-Token": f"profile-{number}",
                "Content-Type": "application/x-www-form-urlencoded"},
                body=urlencode(params).encode())

        requests = [request(n) for n in range(1, CALLBACKS + 1)]
        profiler = cProfile.Profile(time.process_time)  # CPU, not the waits on Azurite
        started = time.perf_counter()
        profiler.enable()
        for req in requests:
            answer = await main(req)
            if answer.status_code != 204:
                raise RuntimeError(f"status_callback answered {answer.status_code}")
        profiler.disable()
        wall = (time.perf_counter() - started) / CALLBACKS
    by_package: Counter[str] = Counter()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    for (path, _, function), (_, _, own, _, _) in stats.items():
        where = path if path != "~" else function  # built-ins: by their name
        package = next((name for piece, name in PACKAGES if piece in where), "other")
        by_package[package] += own / CALLBACKS
    return wall, dict(by_package)


def markdown(wall: float, by_package: Mapping[str, float]) -> str:
    total = sum(by_package.values())
    shares = ", ".join(f"{name} {seconds * 1e6:.0f} µs ({seconds / total:.0%})"
                       for name, seconds in sorted(by_package.items(), key=lambda kv: -kv[1]))
    return "\n".join([
        f"### `status_callback` in process ({CALLBACKS:,} callbacks under cProfile)", "",
        f"The function alone, without the host, each callback one write over the row it "
        f"remembers. The functions' own CPU time by package, per callback: {shares}. "
        f"cProfile's own cost on every call inflates the absolute figures ({total * 1e6:.0f} µs "
        f"in all, {wall * 1e6:.0f} µs wall, against the host's CPU per callback above): read "
        f"the shares. Built-ins (`isinstance`, `dict.get`) fall under \"other\"; most of "
        f"them are the Table SDK's generated serializer walking the entity "
        f"(`_serialization.py`), which the rows above count as azure-data-tables only where "
        f"the time is its own.", ""])
