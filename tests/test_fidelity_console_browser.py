"""The console puts the sandbox's number in a Messaging Service, in a real browser.

Same set-up as test_console_browser.py (its fixtures: ``make run``'s pieces and
Debian's Chromium, no JavaScript error allowed).
"""

from __future__ import annotations

from live import LiveApp
from playwright.sync_api import Page, expect
from test_console_browser import app, browser, console, submit  # noqa: F401 - fixtures

from twilio_sandbox import VALID_FROM


def test_a_number_joins_a_messaging_service_with_advanced_opt_out_from_the_page(
        app: LiveApp, console: Page) -> None:  # noqa: F811 - the fixtures above
    form = console.locator("#messaging-service")
    console.get_by_text("Numbers in a Messaging Service").click()
    expect(form.get_by_label("Its numbers", exact=True)).to_have_value(VALID_FROM)
    form.get_by_label("Advanced Opt-Out").check()
    form.get_by_role("button", name="Save the service").click()
    expect(form.locator(".feedback")).to_contain_text("1 number, Advanced Opt-Out on")
    [service] = app.state()["messaging_services"]
    assert (service["numbers"], service["advanced_opt_out"]) == ([VALID_FROM], True)
    try:
        submit(console, "#inbound-sms", {"From": "+14155550126", "Body": "STOP"},
               "Send to the app")
        webhook = console.locator("#webhooks .webhook", has_text="inbound SMS").first
        webhook.locator("summary").click()
        expect(webhook.locator("tr", has_text="OptOutType")).to_contain_text("STOP")
        expect(webhook.locator("tr", has_text="MessagingServiceSid")).to_contain_text(
            service["sid"])
    finally:
        app.sandbox("DELETE", f"/_sandbox/messaging_services/{service['sid']}")
