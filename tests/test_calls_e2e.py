"""Receiving calls end to end: `make run`'s pieces (host, sandbox, Azurite) over HTTP.

The sandbox plays the phone: a number calls the Twilio number, Twilio fetches the app's
``twiml`` (signed), rings the Voice SDK identity it names, and follows the ``<Dial>``
action, ``<Record>`` and its callbacks to ``call_events`` as Twilio would. The mobile
app reads what the call left in ``conversations`` and plays the voicemail via ``media``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
import unique
from harness import ACCOUNT_SID, AUTH_TOKEN
from live import LiveApp
from test_delivery_e2e import http
from test_media_e2e import fetch

from devhost.easy_auth import bearer

TRANSCRIPT = "Hi, it is about the flat. Call me back."


def start(**settings: str) -> LiveApp:
    env = {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
           "VOICEMAIL_TRANSCRIBE": "true", **settings}
    return LiveApp(env, args=("--sandbox", "--auth"))


@pytest.fixture(scope="module")
def app() -> Iterator[LiveApp]:
    running = start()
    yield running
    assert running.stop() == 0
    assert "status=500" not in running.log()


def user() -> dict[str, str]:
    return {"Authorization": bearer(f"user-{secrets.token_hex(4)}")}


def identity(app: LiveApp, headers: dict[str, str]) -> str:
    status, answer, _ = http("POST", f"{app.base_url}/api/voice_token", headers=headers)
    assert status == 200, answer
    return answer["identity"]


def call_in(app: LiveApp, caller: str, answer: str = "no-answer") -> dict[str, Any]:
    return app.sandbox("POST", "/_sandbox/inbound/call", {
        "from": caller, "answer": answer, "message": 6, "transcript": TRANSCRIPT})


def thread(app: LiveApp, number: str, headers: dict[str, str]) -> dict[str, Any]:
    status, view, _ = http("GET", f"{app.base_url}/api/conversations/{number}",
                           headers=headers)
    assert status == 200, view
    return view


def wait_for_thread(app: LiveApp, number: str, headers: dict[str, str], done,
                    timeout: float = 15.0) -> dict[str, Any]:
    """The thread once ``done(view)`` holds: the callbacks reach the app as Twilio's do,
    after the call's own requests."""
    deadline = time.monotonic() + timeout
    while True:
        view = thread(app, number, headers)
        if done(view):
            return view
        assert time.monotonic() < deadline, view
        time.sleep(0.05)


def kinds(view: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(item["kind"], item.get("status")) for item in view["items"]]


def transcribed(view: dict[str, Any]) -> bool:
    return any(item["kind"] == "voicemail" and item.get("transcription_status")
               for item in view["items"])


def test_a_missed_call_leaves_a_voicemail_only_its_owner_hears(app):
    alice, bob, caller = user(), user(), unique.number()
    status, _, _ = http("POST", f"{app.base_url}/api/send_sms",
                        {"to": caller, "body": "About the flat"}, alice)
    assert status == 201
    outcome = call_in(app, caller)
    [dialed] = outcome["call"]["dialed"]
    assert identity(app, alice) in str(dialed)  # Alice's phone rang
    assert outcome["recordings"], outcome["call"]["actions"]

    view = wait_for_thread(app, caller, alice, transcribed)
    assert kinds(view)[:2] == [("voicemail", None), ("call", "missed")]
    voicemail, missed = view["items"][:2]
    assert (voicemail["sid"], voicemail["transcription"]) == (outcome["recordings"][0]["sid"],
                                                               TRANSCRIPT)
    assert voicemail["transcription_status"] == "completed"
    assert missed["sid"] == outcome["call"]["sid"] and missed["direction"] == "incoming"

    status, headers, audio = fetch(voicemail["recording_url"], alice)
    assert (status, headers["Content-Type"]) == (200, "audio/x-wav")
    assert audio[:4] == b"RIFF"
    assert fetch(voicemail["recording_url"], bob)[0] == 404

    status, _, _ = http("PUT", f"{app.base_url}/api/conversations/{caller}/block",
                        headers=alice)
    assert status == 204
    blocked = call_in(app, caller)
    assert any("rejected" in action for action in blocked["call"]["actions"]), blocked
    view = thread(app, caller, alice)
    assert blocked["call"]["sid"] not in {item["sid"] for item in view["items"]}


def test_an_answered_call_is_kept_with_its_duration(app):
    alice, caller = user(), unique.number()
    assert http("POST", f"{app.base_url}/api/send_sms", {"to": caller, "body": "Hi"},
                alice)[0] == 201
    outcome = call_in(app, caller, answer="answer")
    view = wait_for_thread(app, caller, alice, lambda v: v["items"][0]["kind"] == "call")
    answered = view["items"][0]
    assert (answered["sid"], answered["status"]) == (outcome["call"]["sid"], "completed")
    assert answered["duration"] > 0


def test_a_stranger_reaches_the_incoming_identity_or_voicemail():
    frank = user()
    # Frank's identity is what voice_token gives him: ask a first host, then set it.
    probe = start()
    try:
        frank_identity = identity(probe, frank)
    finally:
        assert probe.stop() == 0
    with_identity = start(VOICE_INCOMING_IDENTITY=frank_identity)
    try:
        stranger = unique.number()
        outcome = call_in(with_identity, stranger)
        assert frank_identity in str(outcome["call"]["dialed"])
        view = wait_for_thread(with_identity, stranger, frank, transcribed)
        assert kinds(view)[1] == ("call", "missed")
    finally:
        assert with_identity.stop() == 0


def test_a_stranger_leaves_a_voicemail_for_whoever_reads_unclaimed_contacts():
    """``make run`` always sets VOICE_INCOMING_IDENTITY (its single user's): once users
    must sign in, nobody holds it, so the calls nobody claims are SMS_UNASSIGNED_OWNER's."""
    reader = f"user-{secrets.token_hex(4)}"
    running = start(SMS_UNASSIGNED_OWNER=f"dev:{reader}", REQUIRE_SIGNED_IN_USER="true")
    try:
        stranger = unique.number()
        call_in(running, stranger)
        headers = {"Authorization": bearer(reader)}
        view = wait_for_thread(running, stranger, headers, transcribed)
        assert kinds(view) == [("voicemail", None), ("call", "missed")]
    finally:
        assert running.stop() == 0


def test_call_events_refuse_unsigned_requests(app):
    status, answer, _ = http(
        "POST", f"{app.base_url}/api/call_events?step=dialed&owner=anonymous"
        f"&remote=%2B16282000000&line=%2B15005550006&at=1",
        form={"AccountSid": ACCOUNT_SID, "CallSid": "CA" + "d4" * 16,
              "DialCallStatus": "no-answer"})
    assert status == 403 and answer["type"].endswith(":invalid-signature")
