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


def test_it_sends_and_stores_as_the_host_would_then_gives_the_environment_back(app_env):
    env = {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
           "TWILIO_FROM_NUMBER": FROM_NUMBER, "TWILIO_API_BASE_URL": app_env.base_url,
           "STATE_STORAGE": shared_azurite().connection_string, **ROOMY_LIMITS}
    before = dict(os.environ)

    async def burst() -> str:
        app = InProcessApp(env, keyed=True)
        try:
            await asyncio.gather(*(app.send_sms("+14155552671", "in process") for _ in range(5)))
            sid = app_env.messages[-1]["sid"]
            return (await find(app_settings(), ANONYMOUS, sid)).status
        finally:
            await app.close()

    assert asyncio.run(burst()) == "queued"
    assert len(app_env.messages) == 5
    assert dict(os.environ) == before


def test_an_answer_other_than_201_stops_the_benchmark(app_env):
    async def refused() -> None:
        app = InProcessApp({"ALLOWED_COUNTRIES": "US"})
        try:
            await app.send_sms("+19004444444", "x")  # premium: refused
        finally:
            await app.close()

    with pytest.raises(RuntimeError, match="answered 403"):
        asyncio.run(refused())
