"""The sandbox console in a real browser: Debian's Chromium driven by Playwright.

The app runs as ``make run`` runs it (host, v1 runtime, sandbox); the tests use
it as a developer does: the printed curls, and the page's own forms and buttons.
Every page must finish without a JavaScript error. Screenshots go to
``.cache/test-output/`` (``TEST_OUTPUT_DIR`` to change it) for people to look at.

Without Chromium the tests skip, saying why; in CI (``CI=true``) they fail.
"""

from __future__ import annotations

import contextlib
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
from aiohttp import web
from harness import ACCOUNT_SID, AUTH_TOKEN, SandboxThread
from live import ROOT, LiveApp
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright
from stub_server import serve

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


@contextlib.contextmanager
def page_at(browser: Browser, url: str, height: int = 720) -> Iterator[Page]:
    """A 1280-wide page (720 high unless told) at ``url``; fails the test on any
    JavaScript error it logged."""
    context = browser.new_context(viewport={"width": 1280, "height": height})
    page = context.new_page()
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(f"console: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: errors.append(f"page: {error}"))
    page.goto(url)
    yield page
    context.close()
    assert errors == []


@pytest.fixture
def console(app: LiveApp, browser: Browser) -> Iterator[Page]:
    """The console at 1280x720, live; fails the test on any JavaScript error."""
    app.sandbox("POST", "/_sandbox/reset")
    with page_at(browser, f"{app.sandbox_url}/console/") as page:
        expect(page.locator("#live")).to_have_text("live")
        page.evaluate("window.loadedOnce = true")  # gone if the page reloads
        yield page
        assert page.evaluate("window.loadedOnce") is True, "the page reloaded"


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
    # A call whose TwiML cannot be fetched completes (Twilio's error message is heard), with
    # Twilio's code linked to its page.
    status, failed = post(f"{app.sandbox_url}/_sandbox/inbound/call",
                          {"from": "+14155550188", "url": f"{app.base_url}/api/no_such_function"})
    assert status == 200, failed
    card = console.locator(f"#call-{failed['call']['sid']}")
    expect(card.locator("h3 .badge")).to_have_text("completed")
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
    expect(console.locator("#inbound-sms .feedback")).to_contain_text("1 reply")
    webhook = console.locator("#webhooks .webhook", has_text="inbound SMS").first
    expect(webhook.locator("summary .code")).to_have_text("200")
    state = app.state()
    assert [m["direction"] for m in state["messages"]] == ["inbound", "outbound-reply"]


def test_a_file_attached_on_the_page_arrives_as_twilio_media(app: LiveApp, console: Page,
                                                             tmp_path: Path) -> None:
    """Kept as Twilio keeps media (an MM message, a Media resource behind Basic Auth); the
    bubble links to the URL Twilio's redirect would give, which needs no credentials."""
    picture = tmp_path / "damage.png"
    picture.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    form = console.locator("#inbound-sms")
    form.get_by_label("From", exact=True).fill("+14155550124")
    form.get_by_label("Media files", exact=True).set_input_files(str(picture))
    form.get_by_role("button", name="Send to the app").click()
    link = console.locator("#thread-14155550124 .bubble.in .media a")
    expect(link).to_have_count(1)
    [message] = [m for m in app.state()["messages"] if m["direction"] == "inbound"]
    assert message["sid"].startswith("MM") and message["num_media"] == "1"
    href = link.get_attribute("href")
    assert href == f"/_sandbox/media/{message['request']['MediaUrl'][0].rsplit('/', 1)[1]}"
    with urllib.request.urlopen(f"{app.sandbox_url}{href}", timeout=15) as answer:
        assert (answer.read(), answer.headers["Content-Type"]) == (
            picture.read_bytes(), "image/png")


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
    # The incoming call rings the app's user (who answers): nothing is spoken on it.
    expect(console.locator(".call .heard q")).to_have_count(1)
    expect(console.locator(".call .heard q")).to_have_text("Your table for two is ready")
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
    console.keyboard.press("Tab")  # the media files
    console.keyboard.press("Tab")  # the submit button
    console.keyboard.press("Enter")
    expect(console.locator("#inbound-sms .feedback")).to_contain_text(
        "SMS delivered to the app's twiml")


# --- what an action did, where it was done --------------------------------------------------


def test_an_actions_outcome_shows_beside_it(app: LiveApp, console: Page) -> None:
    """Not at the bottom of the panel: beside the button, in view, whichever it was."""
    form = console.locator("#fault")
    submit(console, "#fault", {"Fault": "delay", "Count": "1"}, "Add fault")
    said = form.locator(".feedback")
    expect(said).to_have_text("Fault added: the next matching Twilio request fails")
    expect(said).to_be_in_viewport()
    button = form.get_by_role("button", name="Add fault").bounding_box()
    box = said.bounding_box()
    assert button is not None and box is not None
    assert abs(box["y"] - button["y"]) < 80  # beside or just under it, not the panel's end
    form.get_by_role("button", name="Clear faults").click()
    expect(said).to_have_text("Faults cleared")
    console.get_by_role("button", name="Reset sandbox").click()
    expect(console.locator(".bar-actions .feedback")).to_have_text(
        "The sandbox forgot its messages, calls, webhooks and faults")
    expect(console.locator(".bar-actions .feedback")).to_be_in_viewport()
    status, sent = post(f"{app.base_url}/api/send_sms", {"to": "+14155552671", "body": "Hi"})
    assert status == 201, sent
    bubble = console.locator(f"#msg-{sent['sid']}")
    bubble.get_by_label(f"New status for {sent['sid']}").select_option("read")
    bubble.get_by_role("button", name="Push").click()
    expect(bubble.locator(".push .feedback")).to_have_text("Pushed to read")


def test_a_send_the_app_refuses_shows_its_problem(app: LiveApp, console: Page) -> None:
    console.get_by_text("Send an SMS through the app").click()
    form = console.locator("#app-sms")
    form.get_by_label("To", exact=True).fill("+1 (415) 555")
    form.get_by_role("button", name="POST send_sms").click()
    status, problem = post(f"{app.base_url}/api/send_sms",
                           {"to": "+1 (415) 555", "body": "Hello from Azure Functions"})
    assert status == 400, problem
    expect(form.locator(".feedback")).to_have_text(
        f"The app refused it (400): {problem['title']}: {problem['detail']}")
    expect(form.locator(".feedback")).to_have_attribute("data-tone", "bad")
    expect(form.locator(".feedback")).to_be_in_viewport()


def test_a_send_twilio_failed_shows_the_apps_problem(app: LiveApp, console: Page) -> None:
    app.sandbox("POST", "/_sandbox/faults", {"kind": "status", "status": 500, "count": 1})
    console.get_by_text("Place a call through the app").click()
    form = console.locator("#app-call")
    form.get_by_role("button", name="POST make_call").click()
    said = form.locator(".feedback")
    expect(said).to_contain_text("The app failed (502): ")
    request = console.locator("#webhooks .webhook", has_text="mobile app").first
    request.locator("summary").click()
    problem = json.loads(request.locator("pre.answer").inner_text())
    expect(said).to_have_text(f"The app failed (502): {problem['title']}: {problem['detail']}")


def test_a_call_placed_in_the_app_reads_as_outgoing_from_the_app(app: LiveApp,
                                                                  console: Page) -> None:
    status, token = post(f"{app.base_url}/api/voice_token", {})
    assert status == 200, token
    status, call = post(f"{app.sandbox_url}/_sandbox/client_calls",
                        {"token": token["token"], "to": "+14155552671"})
    assert status == 200, call
    card = console.locator(f"#call-{call['sid']}")
    expect(card.locator(".meta .how")).to_have_text(f"outgoing from the app ({call['from']})")
    expect(card.locator("h3 .who")).to_have_text(
        f"{call['from'].removeprefix('client:')} → {mask('+14155552671')}")
    expect(card.locator(".timeline .badge")).to_have_text(["ringing", "in-progress", "completed"])


# --- while the history arrives ---------------------------------------------------------------


def empty_text(page: Page, column: str) -> str:
    """What an empty column says (its ``::before`` text)."""
    return page.evaluate("(id) => getComputedStyle(document.getElementById(id), '::before')"
                         ".content", column)


def test_while_the_history_loads_the_columns_say_so(app: LiveApp, browser: Browser) -> None:
    """Only the history's head has come: the columns are loading, not empty."""
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    page = context.new_page()
    head = {"data": {"opted_out": [], "history": 1000, "counts": {"webhook": 0, "message": 9,
                                                                     "call": 0},
                     "controls": {"faults": [], "faults_applied": {}, "callback_faults": [],
                                  "latency": 0},
                     "app": {"functions": {}, "default_number": "+15005550006"}},
            "masked": {}}
    held = f"retry: 600000\nevent: history\ndata: {json.dumps(head)}\n\n"
    page.route("**/_sandbox/events", lambda route: route.fulfill(
        status=200, body=held, headers={"Content-Type": "text/event-stream"}))
    try:
        page.goto(f"{app.sandbox_url}/console/")
        expect(page.locator("main.layout")).to_have_attribute("data-loading", "true")
        page.wait_for_function("document.querySelector('#faults li') !== null")  # head applied
        assert empty_text(page, "threads") == '"Loading history…"'
        page.unroute("**/_sandbox/events")
        page.reload()  # the real feed: its history ends, and an empty column says it is empty
        expect(page.locator("#live")).to_have_text("live")
        expect(page.locator("main.layout")).not_to_have_attribute("data-loading", "true")
        assert empty_text(page, "threads").startswith('"No messages yet')
    finally:
        context.close()


# --- reset limits: the console asks the local host -----------------------------------------


class LimitsHost:
    """The local host's reset-limits control, as far as the sandbox can tell."""

    def __init__(self, status: int, answer: dict[str, Any]) -> None:
        self.status, self.answer = status, answer
        self.seen: list[tuple[str, str]] = []

    async def reset(self, request: web.Request) -> web.Response:
        self.seen.append((request.content_type, await request.text()))
        kind = "application/problem+json" if self.status >= 400 else "application/json"
        return web.json_response(self.answer, status=self.status, content_type=kind)


@pytest.fixture
def bare_sandbox() -> Iterator[SandboxThread]:
    """A sandbox of its own, no app connected: what it knows of the app, the test sets."""
    running = SandboxThread()
    yield running
    running.close()


def serve_limits(sandbox: SandboxThread, host: LimitsHost) -> web.AppRunner:
    async def start() -> web.AppRunner:
        limits = web.Application()
        limits.router.add_post("/_devhost/reset-limits", host.reset)
        runner, base = await serve(limits)
        sandbox.sandbox.app.functions["reset_limits"] = f"{base}/_devhost/reset-limits"
        return runner
    return sandbox.run(start())


@pytest.mark.parametrize(("status", "answer", "shown"), [
    (200, {"cleared": 3, "detail": "Cleared 3 rate-limit counts in .azurite/."},
     "Limits reset: Cleared 3 rate-limit counts in .azurite/."),
    (409, {"type": "about:blank", "title": "Conflict", "status": 409,
           "detail": "Nothing was cleared: no store runs."},
     "The app refused it (409): Conflict: Nothing was cleared: no store runs."),
])
def test_reset_limits_asks_the_local_host_and_says_what_it_answered(
        bare_sandbox: SandboxThread, browser: Browser, status: int, answer: dict[str, Any],
        shown: str) -> None:
    host = LimitsHost(status, answer)
    runner = serve_limits(bare_sandbox, host)
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    try:
        page.goto(f"{bare_sandbox.base_url}/console/")
        expect(page.locator("#live")).to_have_text("live")
        page.get_by_role("button", name="Reset limits").click()
        said = page.locator(".bar-actions .feedback")
        expect(said).to_have_text(shown)
        expect(said).to_be_in_viewport()
        assert host.seen == [("application/json", "{}")]
    finally:
        page.close()
        bare_sandbox.run(runner.cleanup())


def test_reset_limits_without_the_local_host_says_how_to_connect_it(
        bare_sandbox: SandboxThread, browser: Browser) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    try:
        page.goto(f"{bare_sandbox.base_url}/console/")
        expect(page.locator("#live")).to_have_text("live")
        page.get_by_role("button", name="Reset limits").click()
        expect(page.locator(".bar-actions .feedback")).to_contain_text(
            "App not connected: the sandbox does not know the app's reset_limits URL")
    finally:
        page.close()


# --- links: only to http(s) URLs -------------------------------------------------------------


def test_links_the_app_names_open_only_http_urls(bare_sandbox: SandboxThread,
                                                 browser: Browser) -> None:
    """The app's TwiML names any URL it likes: a javascript: one stays text (and the page,
    under its Content-Security-Policy, still runs without an error)."""
    twiml = ("<Response><Message>look<Media>javascript:alert(document.domain)</Media>"
             "<Media>https://example.com/a.png</Media></Message></Response>")

    async def start() -> tuple[web.AppRunner, str]:
        async def answer(_request: web.Request) -> web.Response:
            return web.Response(text=twiml, content_type="text/xml")
        stub = web.Application()
        stub.router.add_post("/twiml", answer)
        return await serve(stub)

    runner, stub_url = bare_sandbox.run(start())
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text)
            if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(f"{bare_sandbox.base_url}/console/")
        expect(page.locator("#live")).to_have_text("live")
        url = f"{stub_url}/twiml"
        status, outcome = post(f"{bare_sandbox.base_url}/_sandbox/inbound/sms",
                               {"from": "+14155550177", "body": "hi", "url": url})
        assert status == 200, outcome
        media = page.locator("#thread-14155550177 .bubble.out .media li")
        expect(media).to_have_count(2)
        expect(media.nth(0)).to_have_text("media 1")
        expect(media.nth(0).locator("a")).to_have_count(0)
        expect(media.nth(1).get_by_role("link", name="media 2")).to_have_attribute(
            "href", "https://example.com/a.png")
        assert errors == []
    finally:
        page.close()
        bare_sandbox.run(runner.cleanup())
