"""``devices`` writes to Notification Hubs, which throttles per namespace: a caller's
registrations and removals are counted (``RATE_LIMIT_DEVICES_PER_CALLER``), and one over
the limit is refused before the hub hears of it."""

from __future__ import annotations

import secrets

from harness import refused
from push_support import Hub
from test_push import APNS_TOKEN, device, push_env, run_with_hub, signed_in

from push_sandbox.double import DEFAULT_HUB

__all__ = ["push_env"]  # the fixture, used by name


def test_a_callers_registrations_are_limited_before_the_hub_hears_of_them(push_env,
                                                                         monkeypatch):
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "True")
    monkeypatch.setenv("RATE_LIMIT_DEVICES_PER_CALLER", "2")

    async def test(hub: Hub) -> None:
        push_env(hub)
        alice, bob = signed_in(secrets.token_hex(6)), signed_in(secrets.token_hex(6))
        body = {"platform": "apns", "push_channel": APNS_TOKEN}
        assert (await device("PUT", "alice-1", body, alice)).status_code == 204
        assert (await device("DELETE", "alice-1", headers=alice)).status_code == 204
        answer = await device("PUT", "alice-2", body, alice)
        document = refused(answer, 429, "rate-limited")
        assert document["limit"] == "device-per-caller"
        assert answer.headers["RateLimit-Policy"] == '"device-per-caller";q=2;w=3600'
        assert "alice-2" not in hub.double.installations(DEFAULT_HUB)
        assert (await device("PUT", "bob-1", body, bob)).status_code == 204  # his own count
    run_with_hub(test)
