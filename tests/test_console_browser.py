"""The sandbox console in a real browser: Debian's Chromium driven by Playwright.

The app runs as ``make run`` runs it (host, v1 runtime, sandbox); the tests use
it as a developer does: the printed curls, and the page's own forms and buttons.
Every page must finish without a JavaScript error. Screenshots go to
``.cache/test-output/`` (``TEST_OUTPUT_DIR`` to change it) for people to look at.

Without Chromium the tests skip, saying why; in CI (``CI=true``) they fail.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import ACCOUNT_SID, AUTH_TOKEN
from live import ROOT, LiveApp
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from twilio_sandbox.masking import mask

REPLY = "Thanks, we got your message"
ENV = {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
       "SMS_REPLY_MESSAGE": REPLY}
OUTPUT = Path(os.environ.get("TEST_OUTPUT_DIR") or ROOT / ".cache" / "test-output")
#: Debian's Chromium: the real binary first (the /usr/bin wrapper prints a warning).
BROWSERS = ("/usr/lib/chromium/chromium", "/usr/bin/chromium")


def chromium() -> str:
    found = os.environ.get("CHROMIUM_PATH") or next(
        (path for path in BROWSERS if os.access(path, os.X_OK)), None) or shutil.which("chromium")
    if found:
        return found
    reason = ("Chromium not found (make test installs Debian's chromium when run as root; "
              "or set CHROMIUM_PATH)")
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI must run the browser tests: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def app() -> Iterator[LiveApp]:
    running = LiveApp(ENV)
    yield running
    assert running.stop() == 0


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    path = chromium()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=path)
        yield launched
        launched.close()


@pytest.fixture
def console(app: LiveApp, browser: Browser) -> Iterator[Page]:
    """The console at 1280x720, live; fails the test on any JavaScript error."""
    app.sandbox("POST", "/_sandbox/reset")
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    page = context.new_page()
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(f"console: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: errors.append(f"page: {error}"))
    page.goto(f"{app.sandbox_url}/console/")
    expect(page.locator("#live")).to_have_text("live")
    page.evaluate("window.loadedOnce = true")  # gone if the page reloads
    yield page
    assert page.evaluate("window.loadedOnce") is True, "the page reloaded"
    context.close()
    assert errors == []


def post(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=15) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def submit(page: Page, form: str, fields: dict[str, str], button: str) -> None:
    """Fill a form of the page by its labels, as a person would, and send it."""
    located = page.locator(form)
    for label, value in fields.items():
        field = located.get_by_label(label, exact=True)
        if field.evaluate("element => element.tagName") == "SELECT":
            field.select_option(value)
        else:
            field.fill(value)
    located.get_by_role("button", name=button).click()


def screenshot(page: Page, name: str) -> Path:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    path = OUTPUT / name
    page.screenshot(path=str(path))
    return path


def test_sms_sent_through_the_app_appears_live_and_its_badge_moves(
        app: LiveApp, console: Page) -> None:
    status, sent = post(f"{app.base_url}/api/send_sms",
                        {"to": "+14155552671", "body": "Your order has shipped"})
    assert status == 201, sent
    bubble = console.locator(f"#msg-{sent['sid']}")
    expect(bubble).to_contain_text("Your order has shipped")
    # The sandbox reports sent, then delivered, as Twilio does: the badge follows.
    expect(bubble.locator(".meta .badge")).to_have_text("delivered")
    expect(bubble.locator(".steps")).to_contain_text(re.compile("queued → sent .*→ delivered"))
    # A carrier's report pushed from the page: the badge follows, then the error code.
    bubble.get_by_label(f"New status for {sent['sid']}").select_option("undelivered:30006")
    bubble.get_by_role("button", name="Push").click()
    expect(bubble.locator(".meta .badge")).to_have_text("undelivered")
    link = bubble.get_by_role("link", name="30006 Landline or unreachable carrier")
    expect(link).to_have_attribute("href", "https://www.twilio.com/docs/errors/30006")
    # Each report is a signed status callback to the app, with the app's answer.
    callbacks = console.locator("#webhooks .webhook", has_text="status callback")
    expect(callbacks).to_have_count(3)  # sent, delivered, and the pushed undelivered
    expect(callbacks.locator("summary .code")).to_have_text(["204", "204", "204"])
    pushed = callbacks.first
    pushed.locator("summary").click()
    expect(pushed).to_contain_text("I-Twilio-Idempotency-Token")
    expect(pushed.locator("tr", has_text="MessageStatus")).to_contain_text("undelivered")
    expect(pushed.locator("tr", has_text="ErrorCode")).to_contain_text("30006")


def test_a_placed_call_shows_what_the_callee_heard(app: LiveApp, console: Page) -> None:
    status, placed = post(f"{app.base_url}/api/make_call",
                          {"to": "+14155552671", "message": "Your table is ready"})
    assert status == 201, placed
    card = console.locator(f"#call-{placed['sid']}")
    expect(card.locator(".heard q")).to_have_text("Your table is ready")
    expect(card.locator("h3 .badge")).to_have_text("completed")
    expect(card.locator(".timeline")).to_contain_text("in-progress")
    expect(card.locator(".fetch")).to_contain_text("→ 200")
    fetch = console.locator("#webhooks .webhook", has_text="TwiML fetch").first
    fetch.locator("summary").click()
    expect(fetch).to_contain_text("X-Twilio-Signature")
    expect(fetch).to_contain_text(placed["sid"])
    # A call whose TwiML cannot be fetched fails with Twilio's code, linked to its page.
    status, failed = post(f"{app.sandbox_url}/_sandbox/inbound/call",
                          {"from": "+14155550188", "url": f"{app.base_url}/api/no_such_function"})
    assert status == 200, failed
    card = console.locator(f"#call-{failed['call']['sid']}")
    expect(card.locator("h3 .badge")).to_have_text("failed")
    expect(card.get_by_role("link", name="11200")).to_have_attribute(
        "href", "https://www.twilio.com/docs/errors/11200")


def test_an_sms_arriving_from_the_page_shows_the_apps_reply(app: LiveApp, console: Page) -> None:
    submit(console, "#inbound-sms", {"From": "+14155550123", "Body": "Is my order ready?"},
           "Send to the app")
    thread = console.locator("#thread-14155550123")
    expect(thread.locator(".bubble.in")).to_contain_text("Is my order ready?")
    expect(thread.locator(".bubble.out")).to_contain_text(REPLY)
    expect(thread.locator(".bubble.out .meta .badge")).to_have_text("delivered")
    expect(thread.locator("h3 .who")).to_have_text(mask("+14155550123"))
    expect(console.locator("#outcome")).to_contain_text("1 reply")
    webhook = console.locator("#webhooks .webhook", has_text="inbound SMS").first
    expect(webhook.locator("summary .code")).to_have_text("200")
    state = app.state()
    assert [m["direction"] for m in state["messages"]] == ["inbound", "outbound-reply"]


def test_a_number_that_texts_stop_shows_opted_out_until_start(app: LiveApp,
                                                            console: Page) -> None:
    sender = "+14155550124"
    thread = console.locator("#thread-14155550124")
    submit(console, "#inbound-sms", {"From": sender, "Body": "Hi there"}, "Send to the app")
    expect(thread.locator(".bubble.in")).to_have_count(1)
    expect(thread.locator("h3 .opt-out")).to_have_count(0)
    submit(console, "#inbound-sms", {"From": sender, "Body": "STOP"}, "Send to the app")
    expect(thread.locator("h3 .opt-out")).to_have_text("opted out")
    assert thread.get_attribute("data-opted-out") == "true"
    console.reload()  # from the history as well as live
    expect(console.locator("#live")).to_have_text("live")
    expect(thread.locator("h3 .opt-out")).to_have_text("opted out")
    console.evaluate("window.loadedOnce = true")
    submit(console, "#inbound-sms", {"From": sender, "Body": "START"}, "Send to the app")
    expect(thread.locator("h3 .opt-out")).to_have_count(0)
    assert app.state()["opted_out"] == []


def test_a_twilio_500_shows_as_the_apps_502(app: LiveApp, console: Page) -> None:
    submit(console, "#fault", {"Fault": "status", "Status": "500", "Count": "1"}, "Add fault")
    expect(console.locator("#faults")).to_contain_text("HTTP 500 · 1 left")
    console.get_by_text("Send an SMS through the app").click()
    console.locator("#app-sms").get_by_role("button", name="POST send_sms").click()
    request = console.locator("#webhooks .webhook", has_text="mobile app").first
    expect(request.locator("summary .code")).to_have_text("502")
    request.locator("summary").click()
    expect(request.locator("pre.answer")).to_contain_text("twilio-unavailable")
    expect(console.locator("#faults")).to_contain_text("No faults")
    # Send again: the fault is used up, so the same request now succeeds.
    request.get_by_role("button", name="Send again").click()
    again = console.locator("#webhooks .webhook", has_text="mobile app").first
    expect(again.locator("summary .code")).to_have_text("201")
    kinds = console.get_by_label("Show requests of one kind")
    kinds.select_option("twiml")
    expect(console.locator("#webhooks .webhook:visible")).to_have_count(0)
    kinds.select_option("app")
    expect(console.locator("#webhooks .webhook:visible")).to_have_count(2)
    kinds.select_option("")
    screenshot(console, "console-fault.png")


def test_a_status_callback_fault_set_from_the_page_holds_back_the_reports(
        app: LiveApp, console: Page) -> None:
    submit(console, "#callback-fault", {"Status callbacks": "drop", "Of": "message", "Count": "1"},
           "Add")
    expect(console.locator("#faults")).to_contain_text("callbacks never sent (messages) · 1 left")
    status, sent = post(f"{app.base_url}/api/send_sms", {"to": "+14155552671", "body": "Lost?"})
    assert status == 201, sent
    # Twilio's side moves on; the app hears nothing of it.
    expect(console.locator(f"#msg-{sent['sid']} .meta .badge")).to_have_text("delivered")
    expect(console.locator("#faults")).to_contain_text("No faults")
    expect(console.locator("#webhooks .webhook", has_text="status callback")).to_have_count(0)
    assert [c["error"] for c in app.state()["status_callbacks"]] == ["dropped", "dropped"]


def test_numbers_are_masked_until_shown_and_the_page_fits_narrow_windows(
        app: LiveApp, console: Page) -> None:
    """A little of everything, through the printed curls and the sandbox's HTTP API."""
    sandbox = f"{app.sandbox_url}/_sandbox"
    _, shipped = post(f"{app.base_url}/api/send_sms",
                      {"to": "+14155552671", "body": "Your order #1042 has shipped"})
    for status in ("sent", "delivered"):
        assert post(f"{sandbox}/messages/{shipped['sid']}/status", {"status": status})[0] == 200
    post(f"{sandbox}/inbound/sms", {"from": "+14155552671", "body": "Great, thanks!"})
    _, code = post(f"{app.base_url}/api/send_sms",
                   {"to": "+14155550177", "body": "Your sign-in code is 482913"})
    post(f"{sandbox}/messages/{code['sid']}/status", {"status": "undelivered", "error_code": 30003})
    post(f"{app.base_url}/api/make_call",
         {"to": "+14155552671", "message": "Your table for two is ready"})
    post(f"{sandbox}/inbound/call", {"from": "+14155550188"})

    who = console.locator("#thread-14155552671 h3 .who")
    expect(who).to_have_text(mask("+14155552671"))
    expect(console.locator(f"#msg-{shipped['sid']} .meta .badge")).to_have_text("delivered")
    expect(console.locator(f"#msg-{code['sid']} .meta .badge")).to_have_text("undelivered")
    expect(console.locator(".call .heard q").first).to_have_text(
        "Ahoy hoy! This call comes from Twilio through Azure Functions.")
    expect(console.locator(".call .heard q").last).to_have_text("Your table for two is ready")
    for column in ("#threads", "#calls", "#webhooks"):
        expect(console.locator(column)).not_to_contain_text("+14155552671")
    console.get_by_label("Show numbers").check()
    expect(who).to_have_text("+14155552671")
    console.get_by_label("Show numbers").uncheck()
    expect(who).to_have_text(mask("+14155552671"))
    console.locator("#webhooks .webhook", has_text="inbound SMS").locator("summary").click()
    # The three columns side by side at 1280x720.
    boxes = [console.locator(column).bounding_box()
             for column in ("#threads", "#calls", "#webhooks")]
    assert all(box is not None for box in boxes)
    assert boxes[0]["x"] < boxes[1]["x"] < boxes[2]["x"] < 1280
    path = screenshot(console, "console.png")
    assert path.stat().st_size > 10_000
    console.set_viewport_size({"width": 420, "height": 900})
    assert console.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    screenshot(console, "console-narrow.png")


def test_every_control_is_reachable_by_keyboard(app: LiveApp, console: Page) -> None:
    """Tab from the top reaches the forms, and Enter sends an inbound SMS."""
    reached = set()
    for _ in range(40):
        console.keyboard.press("Tab")
        reached.add(console.evaluate(
            "document.activeElement.id || document.activeElement.textContent.trim()"))
    assert {"show-numbers", "reset", "An SMS arrives", "Send to the app"} <= reached
    console.locator("#inbound-sms textarea").focus()
    console.keyboard.press("Tab")  # the media URL
    console.keyboard.press("Tab")  # the submit button
    console.keyboard.press("Enter")
    expect(console.locator("#outcome")).to_contain_text("SMS delivered to the app's twiml")
