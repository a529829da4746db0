"""make_call and send_sms against a mock generated from Twilio's own OpenAPI description.

The loopback sandbox in devhost/ is this project's reading of Twilio; this
test holds the app to Twilio's published description of its 2010 API
instead. Prism serves that description on loopback: it refuses, with a
problem document, every request the description does not allow (a missing
or mistyped form field, a malformed SID, no credentials) and answers the rest
with the description's first example of the response (static mode). Its
debug log shows each request (headers, form body), its verdict and the body
it answered, so each case checks both sides: the request passed Prism's
validation and sent only fields the description declares, and the app
answers 201 with the SID, status and numbers Prism answered, which are the
description's own example.

The pinned description and Prism are installed by ``tests/contract/install.sh``
(``make test`` runs it, and installs node and npm with apt as root); without
node the test skips, saying why, and in CI that skip fails.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import azure.functions as func
import pytest
import unique
from harness import (
    ACCOUNT_SID,
    API_KEY_SECRET,
    API_KEY_SID,
    APP_URL,
    AUTH_TOKEN,
    created,
    invoke,
    request,
)
from installs import CACHE as INSTALLS
from installs import ROOT, require_install
from storage import shared_azurite
from twilio.request_validator import RequestValidator

from devhost import children
from devhost.ready import end

CONTRACT = ROOT / "tests" / "contract"
CACHE = INSTALLS / "contract"
SPEC = CACHE / "twilio_api_v2010.json"
PRISM = CACHE / "node_modules" / "@stoplight" / "prism-cli" / "dist" / "index.js"
INSTALL = "`make contract` (part of `make test`) or `sh tests/contract/install.sh`"

MESSAGES = "/2010-04-01/Accounts/{AccountSid}/Messages.json"
CALLS = "/2010-04-01/Accounts/{AccountSid}/Calls.json"
FORM = "application/x-www-form-urlencoded"
TO = "+14155552671"
SERVICE_SID = "MG" + "c3" * 16
API_KEY = {"TWILIO_API_KEY_SID": API_KEY_SID, "TWILIO_API_KEY_SECRET": API_KEY_SECRET}

STARTUP_WAIT = 60.0  # seconds; a bound, not an expectation: Prism listens within ~2 s
EXCHANGE_WAIT = 10.0
ANSI = re.compile(r"\x1b\[[0-9;]*m")
AUTHORIZATION = re.compile(r"(authorization: Basic )\S+")
# Prism's log lines read "[time] > [SCOPE] <symbol>  <level>   <message>", the
# symbol a non-ASCII badge such as a check mark or a cross.
LEVEL = re.compile(r"[^\x00-\x7f]\s+(?P<level>[a-z]+)\s+(?P<message>.*)$")


def require_tools() -> str:
    """node's path; skip without node, fail when the pinned install is missing or stale."""
    node = shutil.which("node")
    if node is None or shutil.which("npm") is None:
        pytest.skip("node and npm not found: the Prism mock of Twilio's API needs them "
                    "(`make test` installs them with apt when run as root)")
    require_install(CACHE, CONTRACT, ("install.sh", "package.json", "package-lock.json"),
                    (PRISM, SPEC), INSTALL)
    return node


def with_explicit_form_encoding(spec: dict[str, Any]) -> dict[str, Any]:
    """The description with OpenAPI's default encoding of form arrays written out.

    OpenAPI 3.0 sends an array field of a form body as repeated keys (style
    form, explode true) unless an Encoding Object says otherwise. Twilio's
    description relies on that default (``MediaUrl``) and twilio-python sends
    it so, but Prism deserialises an array only for a field with an explicit
    encoding and otherwise refuses the field as "must be array"
    (stoplightio/prism#2473). Writing the default out changes no rule of the
    contract. Prism still keeps only the last value of a repeated key, so of a
    multi-item array it validates the last item: the tests read the whole form
    from Prism's log (``check_form``) and check every item was sent.
    """
    patched = copy.deepcopy(spec)
    for path_item in patched["paths"].values():
        for op in path_item.values():
            if not isinstance(op, dict):
                continue
            form = op.get("requestBody", {}).get("content", {}).get(FORM)
            if not form:
                continue
            encoding = form.setdefault("encoding", {})
            for name, field in form["schema"].get("properties", {}).items():
                if field.get("type") == "array" and name not in encoding:
                    encoding[name] = {"style": "form", "explode": True}
    return patched


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Exchange:
    """One request as Prism's debug log tells it."""

    log: list[str]
    request_line: str
    username: str | None
    form: list[tuple[str, str]]
    violations: list[str]
    passed: bool
    status: str | None
    answer: dict[str, Any] | None

    @classmethod
    def parse(cls, log: list[str]) -> Exchange:
        received = [line for line in log if "Request received" in line]
        assert len(received) == 1, "expected one request:\n" + "\n".join(log)
        username = status = answer = None
        form: list[tuple[str, str]] = []
        violations: list[str] = []
        passed = False
        for line in log:
            match = LEVEL.search(line)
            if match is None:
                continue
            level, message = match["level"], match["message"]
            if level in ("warning", "error", "fatal"):
                violations.append(message)
            elif message.startswith("The request passed the validation rules"):
                passed = True
            elif message.startswith("<") and "authorization: Basic " in message:
                credentials = base64.b64decode(message.rsplit(" ", 1)[1]).decode()
                username = credentials.split(":", 1)[0]
            elif message.startswith("< Body: "):
                form = parse_qsl(message.removeprefix("< Body: "), keep_blank_values=True)
            elif message.startswith("> Responding with "):
                status = message.removeprefix("> Responding with ").strip('"')
            elif message.startswith("> Body: "):
                answer = json.loads(message.removeprefix("> Body: "))
        return cls(log, received[0], username, form, violations, passed, status, answer)

    def describe(self) -> str:
        log = "\n".join(AUTHORIZATION.sub(r"\1<redacted>", line) for line in self.log)
        return f"Prism's log of the request:\n{log}"


class Prism:
    """A Prism mock server child process whose log is collected line by line."""

    def __init__(self, node: str, spec: Path) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.lines: list[str] = []
        self._changed = threading.Condition()
        # --errors: a violation by the request (or by Prism's own answer) gets an
        # error answer, never a mocked success;
        # -v debug: the log carries each request's headers and body and each answer.
        self.process = children.start(
            [node, str(PRISM), "mock", str(spec), "--host", "127.0.0.1",
             "--port", str(self.port), "--errors", "--verboseLevel", "debug"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, encoding="utf-8", errors="replace",
            env={**os.environ, "FORCE_COLOR": "0", "NO_COLOR": "1"},
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(ANSI.sub("", line.rstrip("\n")))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_ready(self) -> None:
        """Wait for Prism's listening line; fail with its log if it exits or never listens."""
        def listening() -> bool:
            return any("Prism is listening on" in line for line in self.lines)
        with self._changed:
            self._changed.wait_for(lambda: listening() or self.process.poll() is not None,
                                   timeout=STARTUP_WAIT)
            if not listening() or self.process.poll() is not None:
                pytest.fail("Prism did not start:\n" + "\n".join(self.lines[-30:]))

    def mark(self) -> int:
        with self._changed:
            return len(self.lines)

    def exchange_since(self, mark: int) -> Exchange:
        """The one request made since ``mark``, once Prism has logged its answer."""
        def answered() -> bool:
            return self.process.poll() is not None or any(
                "> Body: " in line or "Request terminated" in line for line in self.lines[mark:])
        with self._changed:
            self._changed.wait_for(answered, timeout=EXCHANGE_WAIT)
            return Exchange.parse(list(self.lines[mark:]))

    def stop(self) -> None:
        end(self.process)
        self._reader.join(timeout=10)


@pytest.fixture(scope="module")
def twilio_spec() -> dict[str, Any]:
    require_tools()
    return json.loads(SPEC.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def prism(twilio_spec: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prism]:
    node = require_tools()
    spec = tmp_path_factory.mktemp("contract") / "twilio_api_v2010.json"
    spec.write_text(json.dumps(with_explicit_form_encoding(twilio_spec)), encoding="utf-8")
    server = Prism(node, spec)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture
def twilio_mock(app_env: Any, prism: Prism, monkeypatch: pytest.MonkeyPatch) -> Prism:
    """The app, configured as in the other tests, sending its REST requests to Prism."""
    monkeypatch.setenv("TWILIO_API_BASE_URL", prism.base_url)
    return prism


def operation(spec: dict[str, Any], path: str) -> dict[str, Any]:
    return spec["paths"][path]["post"]


def created_example(spec: dict[str, Any], path: str) -> dict[str, Any]:
    """The first example of the path's 201 answer: the one Prism answers in static mode."""
    answer = operation(spec, path)["responses"]["201"]["content"]["application/json"]
    return next(iter(answer["examples"].values()))["value"]


def check_accepted(exchange: Exchange, spec: dict[str, Any], path: str) -> None:
    """Assert Prism took the request as valid and answered it with 201."""
    assert f"post {path.format(AccountSid=ACCOUNT_SID)} " in exchange.request_line, \
        exchange.describe()
    assert not exchange.violations, (
        f"Twilio's description does not allow the request: {exchange.violations}\n"
        + exchange.describe())
    assert exchange.passed, exchange.describe()
    assert exchange.status == "201", exchange.describe()
    assert exchange.answer is not None, exchange.describe()


def check_form(exchange: Exchange, spec: dict[str, Any], path: str) -> None:
    """Assert every field sent is one the description declares, repeated only if an array.

    Prism lets undeclared fields through (the schemas do not forbid them) and
    sees only the last value of a repeated key, so this reads the form itself.
    """
    fields = operation(spec, path)["requestBody"]["content"][FORM]["schema"]["properties"]
    counts = Counter(name for name, _ in exchange.form)
    assert counts, exchange.describe()
    assert set(counts) <= set(fields), f"undeclared fields {set(counts) - set(fields)}"
    repeated = {name for name, count in counts.items() if count > 1}
    assert all(fields[name].get("type") == "array" for name in repeated), repeated


def call_function(prism: Prism, function: str, payload: dict[str, Any]) -> tuple[Any, Exchange]:
    """Invoke a function as the runtime does; its response and Prism's view of the request."""
    mark = prism.mark()
    response = invoke(function, request(
        "POST", f"{APP_URL}/{function}?code=fake-function-key", json_body=payload))
    return response, prism.exchange_since(mark)


MEDIA = ["https://example.com/a.png", "https://example.com/b.png"]
SMS_CASES = {
    "sms": ({"to": TO, "body": "hi <there> & you"}, {}),
    "mms": ({"to": TO, "media_url": MEDIA}, {}),
    "mms_with_body": ({"to": TO, "body": "look", "media_url": MEDIA[:1]}, {}),
    "messaging_service": ({"to": TO, "body": "x"}, {"TWILIO_MESSAGING_SERVICE_SID": SERVICE_SID}),
    "api_key": ({"to": TO, "body": "x"}, API_KEY),
}


@pytest.mark.parametrize(("payload", "settings"), SMS_CASES.values(), ids=SMS_CASES.keys())
def test_send_sms_is_accepted_by_twilios_contract(
    twilio_mock: Prism, twilio_spec: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
    payload: dict[str, Any], settings: dict[str, str],
) -> None:
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    response, exchange = call_function(twilio_mock, "send_sms", payload)

    check_accepted(exchange, twilio_spec, MESSAGES)
    check_form(exchange, twilio_spec, MESSAGES)
    sent = dict(exchange.form)
    assert [value for name, value in exchange.form if name == "MediaUrl"] == \
        payload.get("media_url", [])
    assert ("MessagingServiceSid" in sent) == ("TWILIO_MESSAGING_SERVICE_SID" in settings)
    assert exchange.username == settings.get("TWILIO_API_KEY_SID", ACCOUNT_SID)

    body = created(response)
    answer = exchange.answer
    assert answer is not None
    assert body["sid"] == answer["sid"] == created_example(twilio_spec, MESSAGES)["sid"]
    # The answer says which numbers the app used (the mock's example answer names others);
    # a Messaging Service leaves the sender to Twilio, so its answer names Twilio's choice.
    assert (body["status"], body["to"], body["from"]) == (
        answer["status"], sent["To"], sent.get("From", answer["from"]))
    assert body["date_created"] == parsedate_to_datetime(answer["date_created"]).isoformat()


@pytest.mark.parametrize("settings", [{}, API_KEY], ids=["auth_token", "api_key"])
def test_make_call_is_accepted_by_twilios_contract(
    twilio_mock: Prism, twilio_spec: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
    settings: dict[str, str],
) -> None:
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    response, exchange = call_function(twilio_mock, "make_call", {
        "to": TO, "message": "Your code is 1 2 3", "voice": "Polly.Joanna", "language": "en-US"})

    check_accepted(exchange, twilio_spec, CALLS)
    check_form(exchange, twilio_spec, CALLS)
    assert exchange.username == settings.get("TWILIO_API_KEY_SID", ACCOUNT_SID)

    body = created(response)
    answer = exchange.answer
    assert answer is not None
    assert body["sid"] == answer["sid"] == created_example(twilio_spec, CALLS)["sid"]
    sent = dict(exchange.form)
    assert (body["status"], body["to"], body["from"]) == (
        answer["status"], sent["To"], sent["From"])


# --- media: what the media function asks Twilio ------------------------------------------

MEDIA = "/2010-04-01/Accounts/{AccountSid}/Messages/{MessageSid}/Media/{Sid}.json"


def exchanges_since(prism: Prism, mark: int, count: int) -> list[Exchange]:
    """The ``count`` requests made since ``mark``, once Prism has answered each."""
    def answered() -> int:
        return sum("> Body: " in line or "Request terminated" in line
                   for line in prism.lines[mark:])
    with prism._changed:
        prism._changed.wait_for(lambda: answered() >= count or prism.process.poll() is not None,
                                timeout=EXCHANGE_WAIT)
        lines = list(prism.lines[mark:])
    starts = [i for i, line in enumerate(lines) if "Request received" in line]
    assert len(starts) == count, "\n".join(lines)
    return [Exchange.parse(lines[start:end])
            for start, end in zip(starts, [*starts[1:], len(lines)], strict=True)]


@pytest.mark.parametrize("settings", [{}, API_KEY], ids=["auth_token", "api_key"])
def test_media_is_fetched_as_twilios_contract_describes(
    twilio_mock: Prism, twilio_spec: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
    settings: dict[str, str],
) -> None:
    """The Media resource's metadata as the description has it (its path, SIDs and
    credentials), then its content: the same path without the extension, which the
    description leaves out ("Without an extension, the media is returned using the
    mime-type provided when the media was generated": the Media resource page), so Prism
    answers it 404 and so does the app."""
    for name, value in {**settings, "STATE_STORAGE": shared_azurite().connection_string,
                        "SMS_UNASSIGNED_OWNER": "anonymous"}.items():
        monkeypatch.setenv(name, value)
    sid, media_sid = "MM" + secrets.token_hex(16), "ME" + secrets.token_hex(16)
    content = MEDIA.format(AccountSid=ACCOUNT_SID, MessageSid=sid, Sid=media_sid)[:-5]
    params = {"MessageSid": sid, "SmsSid": sid, "AccountSid": ACCOUNT_SID,
              "From": unique.number(), "To": "+15005550006", "Body": "", "NumMedia": "1",
              "MediaUrl0": twilio_mock.base_url + content, "MediaContentType0": "image/jpeg"}
    twiml = f"{APP_URL}/twiml"
    signature = RequestValidator(AUTH_TOKEN).compute_signature(twiml, params)
    answer = invoke("twiml", request("POST", twiml, form=params,
                                     headers={"X-Twilio-Signature": signature}))
    assert answer.status_code == 200, answer.get_body()

    mark = twilio_mock.mark()
    response = invoke("media", func.HttpRequest(
        "GET", f"{APP_URL}/media/{sid}/0", body=b"",
        route_params={"message_sid": sid, "n": "0"}))
    metadata, fetched = exchanges_since(twilio_mock, mark, 2)

    assert f"get {content}.json " in metadata.request_line, metadata.describe()
    assert not metadata.violations, metadata.describe()
    assert metadata.passed and metadata.status == "200", metadata.describe()
    assert metadata.username == settings.get("TWILIO_API_KEY_SID", ACCOUNT_SID)
    assert f"get {content} " in fetched.request_line, fetched.describe()
    assert response.status_code == 404, response.get_body()
