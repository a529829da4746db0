"""Two-way SMS through `make run`'s pieces (host, sandbox, Azurite), over HTTP.

The mobile app sends through the host; the texter's reply is played by the
sandbox's HTTP API (signed, with Twilio's fields, to the app's ``twiml``) as
the printed curl does; ``conversations`` shows both. The sandbox keeps
opt-outs as Twilio does and answers STOP itself.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import unique
from harness import ACCOUNT_SID, AUTH_TOKEN
from live import LiveApp
from test_delivery_e2e import http
from test_devhost_launcher import printed_curl, run_curl

from devhost.easy_auth import bearer

ENV = {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN}
TEXTER = "+14155552671"


@pytest.fixture(scope="module")
def plain() -> Iterator[LiveApp]:
    """`make run` as a new user starts it."""
    running = LiveApp(ENV)
    yield running
    assert running.stop() == 0
    assert "status=500" not in running.log()


@pytest.fixture(scope="module")
def signed_in() -> Iterator[LiveApp]:
    """With App Service Authentication emulated and an automatic reply configured."""
    running = LiveApp({**ENV, "SMS_REPLY_MESSAGE": "Got it, thanks"},
                      args=("--sandbox", "--auth"))
    yield running
    assert running.stop() == 0
    assert "status=500" not in running.log()


def thread_when(app: LiveApp, number: str, ready: Any, headers: dict[str, str] | None = None,
                ) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        status, view, _ = http("GET", f"{app.base_url}/api/conversations/{number}",
                               headers=headers)
        if status == 200 and ready(view):
            return view
        assert time.monotonic() < deadline, (status, view)
        time.sleep(0.05)


def test_the_printed_curls_send_reply_and_show_the_conversation(plain):
    status, _, sent = run_curl(printed_curl(plain, "/api/send_sms"))
    assert status == 201, sent
    sid = json.loads(sent)["sid"]
    status, _, outcome = run_curl(printed_curl(plain, "/_sandbox/inbound/sms"))
    assert status == 200, outcome
    reply = json.loads(outcome)
    assert reply["webhook"]["answer"]["status"] == 200  # signed, accepted by twiml
    printed = printed_curl(plain, "/api/conversations/")
    assert f"{plain.base_url}/api/conversations/{TEXTER}" in printed

    def both_delivered(view: dict[str, Any]) -> bool:  # newest first; earlier runs' below
        return [(m["sid"], m["status"]) for m in view["items"][:2]] == [
            (reply["message"]["sid"], "received"), (sid, "delivered")]
    view = thread_when(plain, TEXTER, both_delivered)
    incoming, outgoing = view["items"][:2]
    assert (incoming["body"], incoming["from"], incoming["to"]) == (
        "Sounds good!", TEXTER, "+15005550006")
    assert (outgoing["body"], outgoing["from"], outgoing["to"]) == (
        "Hello from Azure Functions", "+15005550006", TEXTER)
    status, _, listed = run_curl(printed_curl(plain, "/api/conversations/"))
    assert status == 200 and json.loads(listed)["items"][0]["sid"] == incoming["sid"]
    status, summary, _ = http("GET", f"{plain.base_url}/api/conversations")
    assert status == 200 and summary["conversations"][0]["number"] == TEXTER


def test_stop_is_answered_by_twilio_once_and_honoured_until_start(signed_in):
    alice, bob = {"Authorization": bearer("alice")}, {"Authorization": bearer("bob")}
    texter = unique.number()  # the session's Azurite keeps opt-outs
    body = {"to": texter, "body": "Your order shipped"}
    assert http("POST", f"{signed_in.base_url}/api/send_sms", body, alice)[0] == 201
    stopped = signed_in.sandbox("POST", "/_sandbox/inbound/sms", {"from": texter, "body": "STOP"})
    # Twilio's own unsubscribe text, and nothing from the app (its SMS_REPLY_MESSAGE is off).
    assert [r["body"] for r in stopped["replies"]] == [
        "You have successfully been unsubscribed. You will not receive any more messages "
        "from this number. Reply START to resubscribe."]
    assert {"number": "+15005550006", "recipient": texter} in signed_in.state()["opted_out"]
    sent_before = len(signed_in.state()["messages"])
    status, problem, _ = http("POST", f"{signed_in.base_url}/api/send_sms", body, alice)
    assert (status, problem["type"]) == (403, "urn:twilio-functions:problem:recipient-opted-out")
    assert len(signed_in.state()["messages"]) == sent_before  # Twilio never asked
    helped = signed_in.sandbox("POST", "/_sandbox/inbound/sms", {"from": texter, "body": "help"})
    assert len(helped["replies"]) == 1  # Twilio's help text; the app stays silent
    started = signed_in.sandbox("POST", "/_sandbox/inbound/sms",
                                {"from": texter, "body": "START"})
    assert len(started["replies"]) == 1
    assert http("POST", f"{signed_in.base_url}/api/send_sms", body, alice)[0] == 201
    chatted = signed_in.sandbox("POST", "/_sandbox/inbound/sms", {"from": texter, "body": "ok"})
    assert [r["body"] for r in chatted["replies"]] == ["Got it, thanks"]
    view = thread_when(signed_in, texter, lambda v: len(v["items"]) == 6, alice)
    assert [m["body"] for m in view["items"]] == [
        "ok", "Your order shipped", "START", "help", "STOP", "Your order shipped"]
    assert http("GET", f"{signed_in.base_url}/api/conversations/{texter}", headers=bob)[0] == 404
