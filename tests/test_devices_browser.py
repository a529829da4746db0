"""The console's Devices view in a real browser (Chromium via Playwright): the devices the
Notification Hubs double keeps and the pushes each received, live, as a mobile developer
watches them. The sandbox and its double run in this process (a thread of their own);
the devices register and the pushes are sent over loopback HTTP, signed as the app signs.

Without Chromium the tests skip, saying why; in CI (``CI=true``) they fail.
"""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect
from test_console_browser import browser, page_at, screenshot  # noqa: F401 - the fixture, shared
from test_push_sandbox import API, APNS_TOKEN, FCM, sas

from push_sandbox import DEFAULT_HUB, FULL_RULE, PREFIX, NotificationHubsDouble, build_app
from twilio_sandbox import TwilioSandbox

ACCOUNT_SID, AUTH_TOKEN = "AC" + "3" * 32, "4" * 32


class Served:
    """The Twilio sandbox with the double mounted, on a loop in a background thread."""

    def __init__(self) -> None:
        self.double = NotificationHubsDouble()
        self.sandbox = TwilioSandbox(accounts={ACCOUNT_SID: AUTH_TOKEN}, fetch_twiml=False)
        self.sandbox.mount(PREFIX, build_app(self.double))
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.base_url = self.run(self.sandbox.start())
        self.hub_url = f"{self.base_url}{PREFIX}{DEFAULT_HUB}"

    def run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)

    def request(self, method: str, path: str, body: Any,
                headers: dict[str, str] | None = None) -> int:
        key = self.double.rules[FULL_RULE].key
        sent = {"Content-Type": "application/json", **(headers or {}),
                "Authorization": sas(self.hub_url, FULL_RULE, key)}
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.hub_url}{path}", data=data, method=method,
                                         headers=sent)
        with urllib.request.urlopen(request, timeout=15) as answer:
            return answer.status

    def register(self, device: str, **fields: Any) -> None:
        body = {"installationId": device, "platform": "fcmv1", "pushChannel": f"fcm-{device}",
                **fields}
        assert self.request("PUT", f"/installations/{device}?{API}", body) == 200

    def send(self, kind: str, body: Any, tags: str, **headers: str) -> None:
        sent = {"ServiceBusNotification-Format": kind, "ServiceBusNotification-Tags": tags,
                **headers}
        assert self.request("POST", f"/messages/?{API}", body, sent) == 201

    def close(self) -> None:
        self.run(self.sandbox.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    running = Served()
    yield running
    running.close()


@pytest.fixture
def console(served: Served, browser: Browser) -> Iterator[Page]:  # noqa: F811
    """The console at 1280x720 with its Devices view open; fails on any JavaScript error."""
    with page_at(browser, f"{served.base_url}/console/") as page:
        expect(page.locator("#devices-status")).to_have_text("live")
        page.get_by_role("button", name="Devices").click()
        expect(page.locator("#devices-view")).to_be_visible()
        page.evaluate("window.loadedOnce = true")
        yield page
        assert page.evaluate("window.loadedOnce") is True, "the page reloaded"


def unique() -> str:
    return f"phone-{uuid.uuid4().hex[:10]}"


def test_registered_devices_and_their_pushes_appear_live(served: Served, console: Page) -> None:
    before = unique()
    served.register(before, tags=["owner:3f2a9c"])
    console.reload()  # the history: a device registered before the page opened
    console.get_by_role("button", name="Devices").click()
    card = console.locator(f'article.device[data-installation-id="{before}"]')
    expect(card).to_contain_text("owner:3f2a9c")
    expect(card.get_by_text("None yet.")).to_be_visible()
    console.evaluate("window.loadedOnce = true")

    phone, iphone = unique(), unique()
    served.register(phone, tags=["owner:3f2a9c"])
    served.register(iphone, platform="apns", pushChannel=APNS_TOKEN, tags=["owner:other"])
    phone_card = console.locator(f'article.device[data-installation-id="{phone}"]')
    iphone_card = console.locator(f'article.device[data-installation-id="{iphone}"]')
    expect(phone_card.locator(".badge")).to_have_text("fcmv1")
    expect(iphone_card.locator(".badge")).to_have_text("apns")

    served.send("fcmv1", FCM, "owner:3f2a9c")
    expect(phone_card.locator(".push")).to_have_count(1)
    expect(phone_card.locator(".push-title")).to_have_text("New message")
    expect(card.locator(".push")).to_have_count(1)

    aps = {"aps": {"alert": {"title": "Missed call", "body": "from +14155550123"}}}
    served.send("apple", aps, "owner:other", **{"apns-push-type": "alert"})
    expect(iphone_card.locator(".push-title")).to_have_text("Missed call · from +•••••••0123")
    # The feed is in order: once this later push is drawn, any of the first send's would
    # be too. The other user's device has this one alone.
    expect(iphone_card.locator(".push")).to_have_count(1)
    console.get_by_label("Show numbers").check()
    expect(iphone_card.locator(".push-title")).to_have_text("Missed call · from +14155550123")
    iphone_card.get_by_text("payload · to owner:other").click()
    expect(iphone_card.locator(".payload")).to_contain_text('"apns-push-type": "alert"')
    screenshot(console, "devices-view.png")

    assert served.request("DELETE", f"/installations/{phone}?{API}", None) == 204
    expect(phone_card).to_have_count(0)
    expect(console.locator("#devices-toggle")).to_contain_text("Devices (")
