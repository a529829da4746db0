"""End to end over real HTTP: the launcher `make run` uses, the runtime, the sandbox."""

from __future__ import annotations

import json
import shutil
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from harness import ACCOUNT_SID, AUTH_TOKEN, PROBLEM
from live import ROOT, LiveApp, copy_app
from twilio.request_validator import RequestValidator

ENV = {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN}


def http(method: str, url: str, body: dict | None = None, headers: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={
        **({"Content-Type": "application/json"} if body is not None else {}), **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=15) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


@pytest.fixture(scope="module")
def app():
    running = LiveApp(ENV)
    yield running
    assert running.stop() == 0


def test_make_call_full_loop(app):
    status, _, body = http("POST", f"{app.base_url}/api/make_call",
                           {"to": "+14155552671", "message": "Your table is ready"})
    assert status == 201, body
    sid = json.loads(body)["sid"]
    assert sid.startswith("CA")

    state = app.wait_for(lambda s: any(c["sid"] == sid and c.get("heard") for c in s["calls"]))
    [call] = [c for c in state["calls"] if c["sid"] == sid]
    assert call["twiml_status"] == 200, call
    assert call["heard"] == [{"verb": "Say", "text": "Your table is ready", "voice": "woman",
                              "language": None}]


def test_send_sms(app):
    status, _, body = http("POST", f"{app.base_url}/api/send_sms",
                           {"to": "+15005550006", "body": "hi"})
    assert status == 201, body
    sid = json.loads(body)["sid"]
    assert sid.startswith("SM")
    assert any(m["sid"] == sid and m["body"] == "hi" for m in app.state()["messages"])


@pytest.mark.parametrize(("to", "code"), [("+15005550001", 21211), ("+15005550009", 21614)])
def test_magic_numbers_give_problem_responses(app, to, code):
    status, headers, body = http("POST", f"{app.base_url}/api/send_sms", {"to": to, "body": "x"})
    assert (status, headers["Content-Type"]) == (400, "application/problem+json")
    document = json.loads(body)
    assert (document["type"], document["twilio_code"]) == (PROBLEM + "twilio-refused", code)


def test_twiml_needs_a_signature(app):
    url = f"{app.base_url}/api/twiml?message=hello"
    status, _, body = http("GET", url)
    assert (status, json.loads(body)["type"]) == (403, PROBLEM + "invalid-signature")
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, {})
    status, headers, body = http("GET", url, headers={"X-Twilio-Signature": signature})
    assert status == 200
    assert headers["Content-Type"] == "text/xml; charset=utf-8"
    assert b'<Say voice="woman">hello</Say>' in body


def test_banner_prints_urls_and_a_signed_twiml_curl(app):
    printed = "".join(app.stdout_lines)
    for function in ("make_call", "send_sms", "twiml"):
        assert f"{app.base_url.replace('127.0.0.1', 'localhost')}/api/{function}" in printed
    assert "X-Twilio-Signature: " in printed
    assert "NOTHING REAL IS SENT" in printed


def test_broken_function_folder_is_reported_and_others_serve(tmp_path: Path):
    copy_app(tmp_path)
    broken = tmp_path / "broken"
    shutil.copytree(ROOT / "twiml", broken)
    (broken / "function.json").write_text(
        (ROOT / "twiml" / "function.json").read_text().replace('"req"', '"request"')
        .replace('"route": "twiml"', '"route": "broken"'))

    app = LiveApp({**ENV, "TWILIO_VALIDATE_SIGNATURE": "false"}, args=(),
                  module="devhost.host", app_dir=tmp_path)
    try:
        assert http("GET", f"{app.base_url}/api/broken")[0] == 500
        status, _, body = http("GET", f"{app.base_url}/api/twiml")
        assert status == 200 and b"<Say" in body
        log = app.log()
        assert "broken" in log and "failed to load" in log
        reason = log.split("failed to load", 1)[1].splitlines()[0]
        assert "declared in Python but not in function.json" in reason, reason
    finally:
        assert app.stop() == 0


def test_ctrl_c_stops_everything():
    app = LiveApp(ENV)
    host_port = int(app.base_url.rsplit(":", 1)[1])
    sandbox_port = int(app.sandbox_url.rsplit(":", 1)[1])
    assert app.stop() == 0
    for port in (host_port, sandbox_port):
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still open"
