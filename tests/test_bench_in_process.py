"""The store-on bursts' baseline: the repository's send_sms, awaited in the benchmark's process."""

from __future__ import annotations

import asyncio
import os

import pytest
from harness import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER
from live import ROOMY_LIMITS
from storage import shared_azurite

from bench.in_process import InProcessApp
from shared.deliveries import find
from shared.identity import ANONYMOUS
from shared.settings import app_settings


def settings(sandbox) -> dict[str, str]:
    """A host's settings, as the benchmark's: the sandbox, the session's Azurite."""
    return {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_FROM_NUMBER": FROM_NUMBER, "TWILIO_API_BASE_URL": sandbox.base_url,
            "STATE_STORAGE": shared_azurite().connection_string, "ALLOWED_COUNTRIES": "US",
            **ROOMY_LIMITS}


def test_it_sends_and_stores_as_the_host_would_then_gives_the_environment_back(app_env,
                                                                               monkeypatch):
    # A declared setting the shell exports must not reach the app in process, as it
    # does not reach the host: this one would answer every send 401.
    monkeypatch.setenv("REQUIRE_SIGNED_IN_USER", "true")
    env = settings(app_env)
    before = dict(os.environ)

    async def burst() -> str:
        async with InProcessApp(env, keyed=True) as app:
            await asyncio.gather(*(app.send_sms("+14155552671", "in process") for _ in range(5)))
            sid = app_env.messages[-1]["sid"]
            return (await find(app_settings(), ANONYMOUS, sid)).status

    assert asyncio.run(burst()) == "queued"
    assert len(app_env.messages) == 5
    assert dict(os.environ) == before


def test_an_answer_other_than_201_stops_the_benchmark(app_env):
    async def refused() -> None:
        async with InProcessApp(settings(app_env)) as app:
            await app.send_sms("+19004444444", "x")  # premium: refused

    with pytest.raises(RuntimeError, match="answered 403"):
        asyncio.run(refused())
