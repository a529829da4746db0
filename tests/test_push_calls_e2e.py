"""Pushes for calls end to end, through `make run`'s pieces: a missed call and a voicemail
each push once to the device of the user the call was for, and to nobody else's.

`python -m devhost --sandbox --auth` serves the app, the Twilio sandbox and, under the
sandbox's `/notificationhubs/`, the Notification Hubs double the app is pointed at; the
host runs `push_notify` on the `push-events` queue. Users register their devices through
`devices`; the sandbox plays a number calling in that nobody answers (`call_events`
keeps the missed call, then the voicemail); the double's `_control/pushes` says what
each device received, waiting for it.
"""

from __future__ import annotations

import json
import secrets
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
import unique
from harness import ACCOUNT_SID, AUTH_TOKEN
from live import LiveApp
from test_delivery_e2e import http

from devhost.easy_auth import bearer

APNS_TOKEN = "ab" * 32
TRANSCRIPT = "It is about the flat, call me back"
#: The double waits at most 30 s per request; the host polls, runs and retries on its own.
WAITS = 2


@pytest.fixture(scope="module")
def app() -> Iterator[LiveApp]:
    running = LiveApp({"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                       "VOICEMAIL_TRANSCRIBE": "true"}, args=("--sandbox", "--auth"))
    yield running
    assert running.stop() == 0
    assert "status=500" not in running.log()


def user_with_device(app: LiveApp) -> tuple[dict[str, str], str]:
    """A signed-in user nobody else's test uses, and the device they registered."""
    headers = {"Authorization": bearer(f"user-{secrets.token_hex(4)}")}
    device = f"phone-{secrets.token_hex(4)}"
    status, answer, _ = http("PUT", f"{app.base_url}/api/devices/{device}",
                             {"platform": "apns", "push_channel": APNS_TOKEN}, headers)
    assert status == 204, answer
    return headers, device


def pushes(app: LiveApp, device: str, at_least: int = 0) -> list[dict[str, Any]]:
    """What ``device`` received, once it has ``at_least`` (the double holds the request)."""
    found: list[dict[str, Any]] = []
    for _ in range(WAITS if at_least else 1):
        query = urlencode({"installation_id": device, "at_least": at_least,
                           "wait": 30 if at_least else 0})
        request = urllib.request.Request(
            f"{app.sandbox_url}/notificationhubs/_control/pushes?{query}",
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=45) as response:
            found = json.loads(response.read())["pushes"]
        if len(found) >= at_least:
            break
    return found


def missed_call(app: LiveApp, owner: dict[str, str], message: int) -> tuple[str, dict]:
    """The owner texts a number, which then calls and is not answered: the caller's number
    and the sandbox's account of the call (answered once every callback went out)."""
    caller = unique.number()
    status, _, _ = http("POST", f"{app.base_url}/api/send_sms",
                        {"to": caller, "body": "About the flat"}, owner)
    assert status == 201
    outcome = app.sandbox("POST", "/_sandbox/inbound/call", {
        "from": caller, "answer": "no-answer", "message": message, "transcript": TRANSCRIPT})
    return caller, outcome


def then_a_reply(app: LiveApp, caller: str) -> str:
    """The caller texts back: an event queued after the call's, so once its push is in,
    the call's pushes have had their turn. Its SID."""
    outcome = app.sandbox("POST", "/_sandbox/inbound/sms", {"from": caller, "body": "Any news?"})
    assert outcome["webhook"]["answer"]["status"] == 200, outcome
    return dict(outcome["webhook"]["params"])["MessageSid"]


def by_event(received: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    events: dict[str, list[dict[str, Any]]] = {}
    for push in received:
        events.setdefault(push["payload"]["event"], []).append(push["payload"])
    return events


def test_a_missed_call_pushes_once_to_its_owners_device_and_nobody_elses(app):
    (alice, alices_phone), (_, bobs_phone) = user_with_device(app), user_with_device(app)
    caller, outcome = missed_call(app, alice, message=0)  # hangs up at the beep: no voicemail
    assert not outcome["recordings"]
    reply = then_a_reply(app, caller)

    events = by_event(pushes(app, alices_phone, at_least=2))
    [missed] = events.pop("missed_call")
    assert (missed["item"], missed["thread"]) == (outcome["call"]["sid"], caller)
    assert missed["aps"]["alert"] == {"title": "Missed call"}  # PUSH_PREVIEW none
    assert [push["item"] for push in events.pop("sms")] == [reply]
    assert events == {}
    assert pushes(app, bobs_phone) == []


def test_a_voicemail_pushes_once_to_its_owners_device_and_nobody_elses(app):
    (alice, alices_phone), (_, bobs_phone) = user_with_device(app), user_with_device(app)
    caller, outcome = missed_call(app, alice, message=5)
    [recording] = outcome["recordings"]
    reply = then_a_reply(app, caller)

    events = by_event(pushes(app, alices_phone, at_least=3))
    [voicemail] = events.pop("voicemail")
    assert (voicemail["item"], voicemail["thread"]) == (recording["sid"], caller)
    assert voicemail["aps"]["alert"] == {"title": "New voicemail"}
    assert [push["item"] for push in events.pop("missed_call")] == [outcome["call"]["sid"]]
    assert [push["item"] for push in events.pop("sms")] == [reply]
    assert events == {}
    assert pushes(app, bobs_phone) == []
    assert TRANSCRIPT not in app.log() and caller not in app.log()
