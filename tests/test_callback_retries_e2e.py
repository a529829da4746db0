"""A status callback answered 503 once, end to end: `make run`'s pieces (host, sandbox,
Azurite) over HTTP, with a front end between Twilio and the app.

On Twilio a callback answered 503 is lost unless its URL asks for retries (connection
overrides: https://www.twilio.com/docs/usage/webhooks/webhooks-connection-overrides).
The app asks for them on every StatusCallback it builds; the sandbox honours them,
and signs the URL without its fragment as Twilio does, so the app's signature check
holds. The front end answers the first status callback of each SID 503, as the app
does while its store is briefly down, and passes everything else to the app as it came
(its ``Host`` included: the app builds its URLs on the front end's origin).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.client import HTTPConnection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from harness import ACCOUNT_SID, AUTH_TOKEN
from live import LiveApp
from storage import run, shared_azurite
from test_delivery_e2e import http, statuses, wait_for_status

from shared.deliveries import remember_sent
from shared.identity import ANONYMOUS
from shared.settings import load_settings
from shared.threads import owner_key
from shared.urls import STATUS_CALLBACK_OVERRIDES, TWIML_OVERRIDES
from twilio_sandbox import VALID_FROM

ENV = {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN}
TO = "+14155552671"
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}

ANONYMOUS_KEY = owner_key(ANONYMOUS.owner)  # in the StatusCallback URL of its sends


class FrontEnd(ThreadingHTTPServer):
    """Passes requests to the app; the first status callback of each SID gets 503.

    ``open`` cleared holds what it would pass on until it is set again.
    """

    daemon_threads = True

    def __init__(self, app_url: str) -> None:
        super().__init__(("127.0.0.1", 0), _Relay)
        self.app = urlsplit(app_url)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.refused: set[str] = set()
        self.lock = threading.Lock()
        self.open = threading.Event()
        self.open.set()

    def first_report(self, path: str, body: bytes) -> bool:
        """Whether this is a status callback for a SID not refused before (and refuse it)."""
        if not path.startswith("/api/status_callback"):
            return False
        form = parse_qs(body.decode())
        sid = (form.get("MessageSid") or form.get("CallSid") or [""])[0]
        with self.lock:
            if sid in self.refused:
                return False
            self.refused.add(sid)
            return True


class _Relay(BaseHTTPRequestHandler):
    server: FrontEnd

    def log_message(self, *_: Any) -> None:  # the app's log says enough
        pass

    def _relay(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.server.first_report(self.path, body):
            self.send_response(503)
            self.send_header("Retry-After", "1")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        assert self.server.open.wait(30), "the front end was never opened"
        app = HTTPConnection(self.server.app.hostname, self.server.app.port, timeout=30)
        try:
            app.request(self.command, self.path, body or None, dict(self.headers.items()))
            answer = app.getresponse()
            data = answer.read()
        finally:
            app.close()
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _relay


@pytest.fixture(scope="module")
def app() -> Iterator[LiveApp]:
    running = LiveApp(ENV)
    yield running
    assert running.stop() == 0
    assert "status=500" not in running.log()


@pytest.fixture
def front(app: LiveApp) -> Iterator[FrontEnd]:
    server = FrontEnd(app.base_url)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def reports_of(app: LiveApp, sid: str, count: int) -> list[dict[str, Any]]:
    """The sandbox's attempts at ``sid``'s status callbacks, once ``count`` have an answer."""
    state = app.wait_for(lambda s: len([c for c in s["status_callbacks"]
                                        if c["sid"] == sid and c["answered"]]) >= count)
    return [c for c in state["status_callbacks"] if c["sid"] == sid]


def test_a_report_answered_503_is_retried_and_recorded(app, front):
    status, sent, _ = http("POST", f"{front.url}/api/send_sms",
                           {"to": TO, "body": "Your table is ready"})
    assert status == 201, sent
    view = wait_for_status(app, sent["sid"], "delivered")
    assert statuses(view) == ["queued", "sent", "delivered"]
    attempts = reports_of(app, sent["sid"], 3)
    assert [(a["status"], a["attempt"], a["answered"]) for a in attempts] == [
        ("sent", 1, 503), ("sent", 2, 204), ("delivered", 1, 204)]
    assert attempts[0]["token"] == attempts[1]["token"]
    # The app asked for the retries; the sandbox called (and signed) the URL without them.
    [message] = [m for m in app.state()["messages"] if m["sid"] == sent["sid"]]
    assert message["request"]["StatusCallback"] == (
        f"{front.url}/api/status_callback?owner={ANONYMOUS_KEY}#{STATUS_CALLBACK_OVERRIDES}")
    assert {a["url"] for a in attempts} == {
        f"{front.url}/api/status_callback?owner={ANONYMOUS_KEY}"}
    assert "invalid-signature" not in app.log()


def test_without_the_override_a_report_answered_503_is_lost(app, front):
    """An app that gives a StatusCallback with no fragment: Twilio's default, no retry."""
    front.open.clear()  # until the app has recorded the send, as make_call/send_sms do
    form = {"To": TO, "From": VALID_FROM, "Body": "Your table is ready",
            "StatusCallback": f"{front.url}/api/status_callback?owner={ANONYMOUS_KEY}"}
    auth = {"Authorization": aiohttp.encode_basic_auth(ACCOUNT_SID, AUTH_TOKEN)}
    status, sent, _ = http("POST", f"{app.sandbox_url}/2010-04-01/Accounts/{ACCOUNT_SID}/"
                           "Messages.json", headers=auth, form=form)
    assert status == 201, sent
    settings = load_settings({**ENV, "STATE_STORAGE": shared_azurite().connection_string})
    run(remember_sent(settings, ANONYMOUS, "sms", {"sid": sent["sid"], "to": TO,
                                                   "status": "queued"}))
    front.open.set()
    view = wait_for_status(app, sent["sid"], "delivered")
    assert statuses(view) == ["queued", "delivered"]  # `sent` never reached the app
    attempts = reports_of(app, sent["sid"], 2)
    assert [(a["status"], a["attempt"], a["answered"]) for a in attempts] == [
        ("sent", 1, 503), ("delivered", 1, 204)]


def test_a_call_asks_for_retries_of_its_reports_and_its_twiml(app, front):
    """make_call: the first report (initiated) answered 503 is retried too; the TwiML URL
    asks for a retry on a 5xx and is its own FallbackUrl, and is signed without them."""
    status, placed, _ = http("POST", f"{front.url}/api/make_call", {"to": TO})
    assert status == 201, placed
    view = wait_for_status(app, placed["sid"], "completed")
    assert statuses(view) == ["queued", "initiated", "ringing", "in-progress", "completed"]
    attempts = reports_of(app, placed["sid"], 5)
    assert [(a["status"], a["attempt"], a["answered"]) for a in attempts][:2] == [
        ("initiated", 1, 503), ("initiated", 2, 204)]
    [call] = [c for c in app.state()["calls"] if c["sid"] == placed["sid"]]
    request = call["request"]
    assert request["Url"].startswith(f"{front.url}/api/twiml?")
    assert request["Url"].endswith(f"#{TWIML_OVERRIDES}")
    assert (request["FallbackUrl"], request["FallbackMethod"]) == (request["Url"], "POST")
    assert request["StatusCallback"].endswith(f"#{STATUS_CALLBACK_OVERRIDES}")
    assert call["twiml_status"] == 200  # the app's signature check passed
