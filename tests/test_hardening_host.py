"""A Host whose port no client can reach is refused, and the sandbox's background work
never dies silently.

``Host: 127.0.0.1:99999`` used to pass the loopback guard and the app's origin
rule: the app built its TwiML and callback URLs on that port, the sandbox's dial
task died of the ValueError and the call stayed ``initiated``. The host and the
sandbox (one ``HostPolicy``) answer 400, the app answers 400 ``invalid-request``
(403 for a webhook, whose URL Twilio cannot have signed), and any error in a
sandbox task is logged and fails its call or message.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiohttp.test_utils import make_mocked_request
from harness import invoke, refused, request
from multidict import CIMultiDict
from storage import shared_azurite
from test_devhost_guard import exchange, host, problem  # noqa: F401 - host: the fixture
from test_devhost_guard import request as raw_request
from test_twilio_sandbox import CUSTOMER, in_thread, run, twilio, until

from localhttp.host_policy import HostPolicy
from localhttp.problem import Refusal
from twilio_sandbox import VALID_FROM, TwilioSandbox
from twilio_sandbox import status_callbacks as sandbox_callbacks

UNREACHABLE = ["127.0.0.1:99999", "localhost:65536", "localhost:0", "[::1]:70000"]
EVENTS = ["initiated", "ringing", "answered", "completed"]


@pytest.mark.parametrize("binding", ["127.0.0.1", "0.0.0.0"])  # noqa: S104 - a policy, not a bind
@pytest.mark.parametrize("name", UNREACHABLE)
def test_the_host_policy_refuses_a_port_out_of_range(binding, name):
    policy = HostPolicy.for_binding(binding)
    with pytest.raises(Refusal) as refusal:
        policy.check(make_mocked_request("GET", "/", headers=CIMultiDict(Host=name)))
    assert refusal.value.status == 400
    for reachable in ("localhost:1", "localhost:65535", "127.0.0.1"):
        policy.check(make_mocked_request("GET", "/", headers=CIMultiDict(Host=reachable)))


@pytest.mark.parametrize("name", [b"127.0.0.1:99999", b"localhost:65536"])
def test_the_local_host_answers_400_before_any_function_runs(host, name):  # noqa: F811
    status, headers, body = exchange(host, raw_request("GET", "/api/hello", host=name))
    assert "port" in problem(status, headers, body, 400)["detail"]


def test_the_sandbox_answers_400_too():
    async def scenario(sandbox: TwilioSandbox) -> bytes:
        port = int(sandbox.base_url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /2010-04-01/Accounts.json HTTP/1.1\r\nHost: 127.0.0.1:99999\r\n"
                     b"Connection: close\r\n\r\n")
        answer = await reader.read()
        writer.close()
        return answer

    assert run(scenario).startswith(b"HTTP/1.1 400 ")


@pytest.mark.parametrize("name", UNREACHABLE)
@pytest.mark.parametrize(("function", "fields"), [("make_call", {}), ("send_sms", {"body": "x"})])
def test_the_app_refuses_to_build_urls_on_such_a_port(app_env, monkeypatch, name, function,
                                                        fields):
    monkeypatch.setenv("STATE_STORAGE", shared_azurite().connection_string)  # callbacks: a URL
    answer = invoke(function, request("POST", f"http://{name}/api/{function}",
                                      json_body={"to": "+14155552671", **fields}))
    assert "cannot be parsed" in refused(answer, 400, "invalid-request")["detail"]
    assert app_env.calls == [] and app_env.messages == []


def test_a_webhook_on_such_a_port_is_no_url_twilio_signed(app_env):
    answer = invoke("twiml", request("POST", "http://127.0.0.1:99999/api/twiml",
                                     form={"CallSid": "CA" + "0" * 32},
                                     headers={"X-Twilio-Signature": "c2lnbmVk"}))
    refused(answer, 403, "invalid-signature")


# --- the sandbox's background tasks ------------------------------------------------


def test_a_call_whose_urls_name_an_unreachable_port_ends_instead_of_hanging(caplog):
    caplog.set_level(logging.WARNING, logger="twilio_sandbox")

    async def scenario(sandbox: TwilioSandbox):
        call = await in_thread(
            twilio(sandbox).calls.create, to=CUSTOMER, from_=VALID_FROM,
            url="http://127.0.0.1:99999/api/twiml",
            status_callback="http://127.0.0.1:99999/api/status_callback",
            status_callback_event=EVENTS)
        return await sandbox.wait_for_twiml(call.sid, timeout=30), sandbox.callbacks_sent

    call, reports = run(scenario)
    # Answered, then Twilio's error message: the callee heard it, so the call completes.
    assert call["status"] == "completed"
    assert call["error"].startswith("11205 ") and "Port out of range" in call["error"]
    assert reports and all(r["error"].startswith("11205 ") for r in reports)


@pytest.fixture
def broken_reports(monkeypatch):
    """A bug in the reports the lifecycles send: every one raises."""
    def broken(*args, **kwargs):
        raise RuntimeError("the report could not be built")
    monkeypatch.setattr(sandbox_callbacks, "call_report", broken)
    monkeypatch.setattr(sandbox_callbacks, "message_report", broken)


def test_an_error_in_a_calls_task_is_logged_and_fails_the_call(broken_reports, caplog):
    async def scenario(sandbox: TwilioSandbox):
        call = await in_thread(
            twilio(sandbox).calls.create, to=CUSTOMER, from_=VALID_FROM,
            twiml="<Response><Say>hi</Say></Response>",
            status_callback="http://127.0.0.1:9/status_callback", status_callback_event=EVENTS)
        return await sandbox.wait_for_twiml(call.sid, timeout=30)

    call = run(scenario)
    assert (call["status"], call["error"]) == (
        "failed", "sandbox error: RuntimeError('the report could not be built')")
    assert f"dial {call['sid']}: the sandbox failed" in caplog.text
    assert "RuntimeError" in caplog.text  # with its traceback


def test_an_error_in_a_messages_task_is_logged_and_fails_the_message(broken_reports, caplog):
    async def scenario(sandbox: TwilioSandbox):
        message = await in_thread(
            twilio(sandbox).messages.create, to=CUSTOMER, from_=VALID_FROM, body="hi",
            status_callback="http://127.0.0.1:9/status_callback")
        stored = next(m for m in sandbox.messages if m["sid"] == message.sid)
        await until(lambda: stored["status"] == "failed")
        return stored

    message = run(scenario)
    assert "RuntimeError" in message["error"]
    assert f"report {message['sid']}: the sandbox failed" in caplog.text
