"""No secret and no phone number escapes: every response and log line of a representative run.

The runs use recognisable fake secrets (harness.AUTH_TOKEN, harness.API_KEY_SECRET
and a function key), so finding one is a plain substring search.

Live: the launcher with its sandbox and ``--enforce-keys`` serves successes,
every kind of refusal (host 401/404/405, every problem type the functions can
answer live) and every Twilio fault, with the key sent both as
``x-functions-key`` and as ``?code=``. Then every response (status line
aside: body and headers), the whole log stream and the banner are scanned.
The app's and host's log lines must show numbers only masked; the access log
no query string; what Twilio received no function key.

In-process: the launcher clears API-key settings in sandbox mode, so the
API-key credential (and a wrong one, and a misconfigured one) runs through
``harness.invoke`` against the tests' sandbox thread, with pytest's caplog
capturing every logger, Twilio request tracing switched on.

The load runner (python -m loadtest) makes the same scan of its own run.
"""

from __future__ import annotations

import json
import logging
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import azure.functions as func
import pytest
from harness import (
    ACCOUNT_SID,
    API_KEY_SECRET,
    API_KEY_SID,
    APP_URL,
    AUTH_TOKEN,
    SandboxThread,
    invoke,
    request,
)
from live import LiveApp
from twilio.request_validator import RequestValidator

FUNCTION_KEY = "fake-function-key-s3cr3t"
WRONG_SECRET = "fake-wrong-api-key-s3cr3t-0004"
SECRETS = (AUTH_TOKEN, API_KEY_SECRET, FUNCTION_KEY, WRONG_SECRET)
UNMASKED = re.compile(r"\+\d{8,15}")
LOG_RECORD = re.compile(r"^\d{4}-\d\d-\d\d [\d:,]{12} \w+ \[[^\]]*\] (?P<logger>[\w.]+): ")
SANDBOX_LOGGERS = "twilio_sandbox"
NUMBERS = ("+14155552671", "+442071838750")
# A Twilio refusal with a code the app has no special answer for: 21610 would
# opt NUMBERS[0] out, and the app would refuse the faults after it itself.
FAULTS = (
    {"kind": "status", "status": 500}, {"kind": "status", "status": 503},
    {"kind": "status", "status": 401}, {"kind": "status", "status": 422, "code": 21612},
    {"kind": "rate_limit", "retry_after": 3}, {"kind": "drop"}, {"kind": "malformed"},
    {"kind": "delay", "delay": 2.5},
)


@dataclass
class Answer:
    label: str
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def text(self) -> str:
        return self.body.decode("utf-8", "replace") + "\n" + "\n".join(
            f"{name}: {value}" for name, value in self.headers)

    def slug(self) -> str | None:
        try:
            return str(json.loads(self.body)["type"]).rsplit(":", 1)[-1]
        except (ValueError, KeyError, TypeError):
            return None


@dataclass
class Run:
    answers: list[Answer] = field(default_factory=list)
    log: str = ""
    stdout: str = ""
    twilio_received: str = ""  # the sandbox's state: what "Twilio" was sent

    def log_lines(self, *, sandbox: bool) -> list[str]:
        """Log records (continuations included) from the sandbox's loggers, or from the rest."""
        chosen: list[str] = []
        keep = False
        for line in self.log.splitlines():
            match = LOG_RECORD.match(line)
            if match:
                keep = match["logger"].startswith(SANDBOX_LOGGERS) == sandbox
            if keep:
                chosen.append(line)
        return chosen


class Client:
    """The mobile app and Twilio, talking to one live app."""

    def __init__(self, app: LiveApp, run: Run) -> None:
        self.app, self.run = app, run

    def send(self, label: str, method: str, path: str, *, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> Answer:
        req = urllib.request.Request(f"{self.app.base_url}{path}", data=body,
                                     method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=15) as response:
                answer = Answer(label, response.status, list(response.headers.items()),
                                response.read())
        except urllib.error.HTTPError as error:
            answer = Answer(label, error.code, list(error.headers.items()), error.read())
        self.run.answers.append(answer)
        return answer

    def post(self, label: str, function: str, data: Any, *, key: str | None = FUNCTION_KEY,
             in_query: bool = False, content_type: str = "application/json") -> Answer:
        path, headers = f"/api/{function}", {"Content-Type": content_type}
        if key is not None and in_query:
            path += "?" + urlencode({"code": key})
        elif key is not None:
            headers["x-functions-key"] = key
        body = data if isinstance(data, bytes) else json.dumps(data).encode()
        return self.send(label, "POST", path, body=body, headers=headers)

    def twiml(self, label: str, query: str = "?message=Hello+there", *,
              form: dict[str, str] | None = None, signed: bool = True) -> Answer:
        url = f"{self.app.base_url}/api/twiml{query}"
        headers = {}
        if signed:
            headers["X-Twilio-Signature"] = RequestValidator(AUTH_TOKEN).compute_signature(
                url, form or {})
        if form is None:
            return self.send(label, "GET", f"/api/twiml{query}", headers=headers)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        return self.send(label, "POST", f"/api/twiml{query}", body=urlencode(form).encode(),
                         headers=headers)


def drive(client: Client) -> None:
    """Successes, every refusal, every Twilio fault; the key both ways."""
    sms = {"to": NUMBERS[0], "body": "Your order has shipped"}
    client.post("sms", "send_sms", sms)
    client.post("sms key in query", "send_sms", urlencode({"to": NUMBERS[1], "body": "Hi"})
                .encode(), in_query=True, content_type="application/x-www-form-urlencoded")
    client.post("mms", "send_sms", {"to": NUMBERS[1], "media_url": ["https://example.com/a.png"]})
    client.post("call", "make_call", {"to": NUMBERS[0], "message": "Your table is ready"})
    client.post("call key in query", "make_call", {"to": NUMBERS[1], "message": "Hello"},
                in_query=True)
    client.twiml("twiml get")
    client.twiml("incoming sms", "", form={"MessageSid": "SM" + "e5" * 16, "From": NUMBERS[0],
                                           "To": "+15005550006", "AccountSid": ACCOUNT_SID,
                                           "Body": "hi"})
    # The host's refusals.
    client.post("no key", "send_sms", sms, key=None)
    client.post("wrong key", "send_sms", sms, key="not-the-key")
    client.post("wrong key in query", "make_call", {"to": NUMBERS[0]}, key="not-the-key",
                in_query=True)
    client.send("unknown path", "GET", "/api/nothing-here")
    client.send("host 405", "DELETE", "/api/twiml")
    # The functions' refusals.
    client.post("invalid number", "send_sms", {"to": "0044 20 7183 8750", "body": "x"})
    client.post("unknown field", "make_call", {"to": NUMBERS[0], "twiml": "<Response/>"})
    client.post("not json", "send_sms", b"{to: " + NUMBERS[0].encode())
    client.post("premium", "make_call", {"to": "+19005551234"})
    client.send("function 405", "GET", "/api/send_sms", headers={"x-functions-key": FUNCTION_KEY})
    client.post("too large", "send_sms", {"to": NUMBERS[0], "body": "x" * 70_000})
    client.post("plain text", "make_call", b"to=" + NUMBERS[0].encode(), content_type="text/plain")
    client.post("twilio refuses sms", "send_sms", {"to": "+15005550001", "body": "x"})
    client.post("twilio refuses call", "make_call", {"to": "+15005550002"})
    client.twiml("unsigned", signed=False)
    bad = RequestValidator("another-token").compute_signature("http://x/api/twiml", {})
    client.send("bad signature", "GET", "/api/twiml?message=x",
                headers={"X-Twilio-Signature": bad})
    # Twilio failing.
    for fault in FAULTS:
        client.app.sandbox("POST", "/_sandbox/faults", {**fault, "count": 1})
        client.post(f"fault {fault}", "send_sms", sms)


@pytest.fixture(scope="module")
def live_run() -> Iterator[Run]:
    env = {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
           "FUNCTIONS_LOCAL_KEY": FUNCTION_KEY, "TWILIO_TIMEOUT_SECONDS": "2"}
    app = LiveApp(env, args=("--sandbox", "--enforce-keys"))
    run = Run()
    try:
        drive(Client(app, run))
        # Let the sandbox finish: the calls' TwiML fetches (logged by the app too)...
        app.wait_for(lambda s: all(c["status"] in ("completed", "failed") for c in s["calls"]))
        sent = sum(a.status == 201 and a.label.startswith(("sms", "mms")) for a in run.answers)
        # ...and the SMS the delay fault held back, which Twilio finishes after the 504.
        state = app.wait_for(lambda s: len(s["messages"]) == sent + 1)
        run.twilio_received = json.dumps(state)
    finally:
        assert app.stop() == 0
    run.log, run.stdout = app.log(), "".join(app.stdout_lines)
    yield run


def test_the_run_covers_every_kind_of_answer(live_run: Run) -> None:
    """The scan is only as good as the mix: every status and problem type is in it."""
    statuses = {answer.status for answer in live_run.answers}
    assert statuses == {200, 201, 400, 401, 403, 404, 405, 413, 415, 422, 429, 502, 504}
    slugs = {answer.slug() for answer in live_run.answers} - {None}
    assert slugs == {"invalid-field", "invalid-body", "destination-refused", "method-not-allowed",
                     "body-too-large", "unsupported-media-type", "twilio-refused",
                     "invalid-signature", "twilio-unavailable", "twilio-credentials",
                     "twilio-rate-limited", "twilio-timeout"}
    assert all(a.status == 201 for a in live_run.answers if a.label.startswith(("sms", "mms",
                                                                                "call")))


def test_no_secret_in_any_response(live_run: Run) -> None:
    leaks = [(answer.label, secret) for answer in live_run.answers for secret in SECRETS
             if secret in answer.text()]
    assert leaks == []


def test_no_secret_in_the_log_or_the_banner(live_run: Run) -> None:
    assert "function=send_sms status=201" in live_run.log  # the log is the app's
    # With --enforce-keys the banner's curls for the keyed functions (make_call,
    # send_sms, status, conversations, voice_token) carry the developer's own local
    # key, ready to paste; no other line of it holds any secret.
    key_header = f"x-functions-key: {FUNCTION_KEY}"
    keyed = [line for line in live_run.stdout.splitlines()
             if line.strip().startswith("curl ") and key_header in line
             and "/api/twiml" not in line]
    assert len(keyed) == 5
    rest = "\n".join(line for line in live_run.stdout.splitlines() if line not in keyed)
    for secret in SECRETS:
        assert secret not in live_run.log
        assert secret not in rest


def test_numbers_are_masked_in_the_apps_and_hosts_log_lines(live_run: Run) -> None:
    lines = live_run.log_lines(sandbox=False)
    assert any("to=+1•••••••2671" in line for line in lines)
    assert any("to=+44•••••••8750" in line for line in lines)
    assert [line for line in lines if UNMASKED.search(line)] == []


def test_the_sandbox_masks_numbers_in_its_log_lines_too(live_run: Run) -> None:
    lines = live_run.log_lines(sandbox=True)
    assert any("+1•••••••2671" in line for line in lines)
    assert [line for line in lines if UNMASKED.search(line)] == []


def test_the_access_log_has_no_query_string(live_run: Run) -> None:
    access = [line for line in live_run.log.splitlines() if " aiohttp.access: " in line]
    assert any("POST /api/send_sms 201" in line for line in access)
    assert [line for line in access if "?" in line or "code=" in line] == []


def test_twilio_never_gets_the_function_key_or_the_token(live_run: Run) -> None:
    """make_call builds the TwiML URL itself: the caller's ?code= must not ride along to Twilio."""
    assert '"Url": "http://localhost:' in live_run.twilio_received  # the URL make run prints
    for secret in SECRETS:
        assert secret not in live_run.twilio_received
    assert "code=" not in live_run.twilio_received


# --- API-key credentials, in-process ------------------------------------------------


def _text(response: func.HttpResponse) -> str:
    return response.get_body().decode("utf-8", "replace") + repr(dict(response.headers))


def test_api_key_runs_leak_nothing(app_env: SandboxThread, monkeypatch: pytest.MonkeyPatch,
                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="twilio_functions.twilio_http")  # tracing on
    monkeypatch.setenv("TWILIO_API_KEY_SID", API_KEY_SID)
    monkeypatch.setenv("TWILIO_API_KEY_SECRET", API_KEY_SECRET)
    sms = {"to": NUMBERS[0], "body": "Your order has shipped"}

    def post(function: str, body: dict[str, Any]) -> func.HttpResponse:
        return invoke(function, request("POST", f"{APP_URL}/{function}", json_body=body))

    responses = [post("send_sms", sms), post("make_call", {"to": NUMBERS[1]})]
    assert [r.status_code for r in responses] == [201, 201]
    assert {m["auth_username"] for m in app_env.messages} == {API_KEY_SID}  # the key was used
    for fault in ({"kind": "status", "status": 401}, {"kind": "rate_limit"}, {"kind": "drop"}):
        app_env.fault(count=1, **fault)
        responses.append(post("send_sms", sms))
    url = f"{APP_URL}/twiml?message=hi"
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, {})
    responses.append(invoke("twiml", request("GET", url,
                                             headers={"X-Twilio-Signature": signature})))
    monkeypatch.setenv("TWILIO_API_KEY_SECRET", WRONG_SECRET)  # a rotated-away secret
    responses.append(post("send_sms", sms))
    monkeypatch.delenv("TWILIO_API_KEY_SID")  # half an API key: misconfigured
    responses.append(post("send_sms", sms))

    assert [r.status_code for r in responses] == [201, 201, 502, 429, 502, 200, 502, 500]
    problem = json.loads(responses[-1].get_body())
    assert problem["setting"] == "TWILIO_API_KEY_SID"
    assert "-- BEGIN Twilio API Request --" in caplog.text  # traced, so scanned too
    for secret in SECRETS:
        assert all(secret not in _text(r) for r in responses)
        assert secret not in caplog.text
    ours = [r.getMessage() for r in caplog.records if not r.name.startswith(SANDBOX_LOGGERS)]
    assert any("to=+1•••••••2671" in line for line in ours)
    assert [line for line in ours if UNMASKED.search(line)] == []
