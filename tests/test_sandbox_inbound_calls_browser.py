"""The console rings the app and shows what the call came to, in a real browser.

Same browser as test_console_browser.py (Debian's Chromium, no JavaScript error
allowed), but no app of this project: a sandbox on its own loop and a stand-in that
answers Twilio as an app with voicemail would (rings a client, takes a message).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from aiohttp import web
from harness import AUTH_TOKEN, SandboxThread
from playwright.sync_api import Browser, Locator, Page, expect
from stub_server import serve
from test_console_browser import (
    browser,  # noqa: F401 - the fixture
    page_at,
)

CALLER = "+14155550177"
RING = ('<Response><Dial timeout="20" action="/dialed" answerOnBridge="true">'
        "<Client>alice</Client></Dial></Response>")
VOICEMAIL = ('<Response><Say>Leave a message</Say><Record transcribe="true" action="/recorded" '
             'transcribeCallback="/transcribed"/></Response>')


async def answer(request: web.Request) -> web.Response:
    """The app's side: ring alice; unanswered, take a message; then hang up."""
    form = await request.post()
    if request.path == "/twiml":
        document = RING
    elif request.path == "/dialed" and form.get("DialCallStatus") != "completed":
        document = VOICEMAIL
    elif request.path in ("/dialed", "/recorded"):
        document = "<Response><Hangup/></Response>"
    else:
        return web.Response(status=204)
    return web.Response(text=document, content_type="text/xml")


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxThread]:
    running = SandboxThread()
    stand_in = web.Application()
    stand_in.router.add_route("*", "/{path:.*}", answer)
    runner, base = running.run(serve(stand_in, shutdown_timeout=0.5))
    running.call_soon(lambda: setattr(running.sandbox.app, "functions",
                                      {"twiml": f"{base}/twiml"}))
    yield running
    running.run(runner.cleanup())
    running.close()


@pytest.fixture
def console(sandbox: SandboxThread, browser: Browser) -> Iterator[Page]:  # noqa: F811
    sandbox.reset()
    with page_at(browser, f"{sandbox.base_url}/console/", height=900) as page:
        expect(page.locator("#live")).to_have_text("live")
        yield page


def ring(page: Page, choice: str, message: str, says: str) -> None:
    form = page.locator("#inbound-call")
    if not form.is_visible():
        page.get_by_text("A call comes in").click()
    form.get_by_label("From", exact=True).fill(CALLER)
    form.get_by_label("The rung app user").select_option(choice)
    form.get_by_label("Voicemail (s)").fill(message)
    form.get_by_label("The caller says").fill(says)
    form.get_by_role("button", name="Ring the app").click()


def rung(sandbox: SandboxThread, page: Page, choice: str, says: str,
         feedback: str) -> tuple[dict, Locator]:
    """Ring the app (a 4 s message), once the form says ``feedback``: the call and its
    item on the caller's thread."""
    ring(page, choice, "4", says)
    expect(page.locator("#inbound-call .feedback")).to_contain_text(feedback)
    [call] = sandbox.calls
    return call, page.locator(f"#callitem-{call['sid']}")


def test_a_missed_call_leaves_a_voicemail_the_thread_plays_with_its_transcript(
        sandbox: SandboxThread, console: Page) -> None:
    ring(console, "no-answer", "4", "Call me back about Friday")
    feedback = console.locator("#inbound-call .feedback")
    expect(feedback).to_contain_text(re.compile(r"Missed call \(no-answer\), 1 voicemail"))
    [call] = sandbox.calls
    [recording] = call["recordings"]
    item = console.locator(f"#callitem-{call['sid']}")
    expect(item.locator(".outcome")).to_have_text("Missed call (no-answer)")
    expect(item.locator(".voicemail .label")).to_have_text("Voicemail · 4 s")
    expect(item.locator(".transcript")).to_have_text("Call me back about Friday")
    player = item.locator("audio")
    expect(player).to_have_attribute("src", f"/_sandbox/recordings/{recording['sid']}")
    # The browser plays it from the sandbox's own origin, without any credentials.
    seconds = player.evaluate("""audio => new Promise((done, failed) => {
        audio.addEventListener("loadedmetadata", () => done(audio.duration));
        audio.addEventListener("error", () => failed(String(audio.error && audio.error.code)));
        audio.preload = "auto"; audio.load(); })""")
    assert seconds == pytest.approx(4, abs=0.05)
    card = console.locator(f"#call-{call['sid']}")
    expect(card.locator(".dialed li")).to_contain_text("client alice")
    expect(card.locator(".dialed .badge")).to_have_text("no-answer")
    expect(card.locator(".voicemail audio")).to_have_count(1)
    transcription = console.locator("#webhooks .webhook", has_text="transcription").first
    transcription.locator("summary").click()
    expect(transcription.locator("tr", has_text="TranscriptionText")).to_contain_text(
        "Call me back about Friday")
    assert AUTH_TOKEN not in console.content()


def test_an_answered_call_shows_on_the_thread_with_how_long_it_lasted(
        sandbox: SandboxThread, console: Page) -> None:
    _, item = rung(sandbox, console, "answer", "unused", "Answered call · 30 s")
    expect(item.locator(".outcome")).to_have_text("Answered call · 30 s")
    expect(item.locator(".voicemail")).to_have_count(0)
    thread = console.locator("#thread-14155550177")
    expect(thread.locator("h3 .count")).to_have_text("1 item")


def test_a_transcription_arriving_while_the_voicemail_plays_shows_and_play_goes_on(
        sandbox: SandboxThread, console: Page) -> None:
    call, item = rung(sandbox, console, "no-answer", "First words", "1 voicemail")
    expect(item.locator(".transcript")).to_have_text("First words")
    player = item.locator("audio")
    # Muted and looping: the browser plays it without a gesture, and it never ends.
    player.evaluate("""audio => { audio.kept = true; audio.muted = true; audio.loop = true;
                                  return audio.play(); }""")
    assert player.evaluate("audio => !audio.paused")

    def transcribed_again() -> None:
        [record] = [c for c in sandbox.sandbox.calls if c["sid"] == call["sid"]]
        record["recordings"] = [{**r, "transcription": "Second words"}
                                for r in record["recordings"]]
    sandbox.call_soon(transcribed_again)
    expect(item.locator(".transcript")).to_have_text("Second words")
    # The very element, still playing.
    assert player.evaluate("audio => audio.kept === true && !audio.paused")
