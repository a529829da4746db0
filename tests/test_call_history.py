"""Calls on their threads (Azurite, the loopback sandbox): an outgoing call is kept when it is
placed and its final status joins it; a voicemail's recording reaches its owner through
``media``, fetched from Twilio with the account's credentials."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta

import azure.functions as func
import pytest
import unique
from harness import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, invoke, refused, request
from test_incoming_calls import ORIGIN, at_once, in_store, incoming, new_user, on_azure  # noqa: F401
from twilio.request_validator import RequestValidator

from shared import threads
from shared.client_identity import identity_for
from shared.identity import Caller
from shared.settings import load_settings


def principal(user: Caller) -> dict[str, str]:
    return {"X-MS-CLIENT-PRINCIPAL-ID": str(user.user_id), "X-MS-CLIENT-PRINCIPAL-IDP": "aad"}


def make_call(user: Caller, to: str) -> str:
    response = invoke("make_call", request("POST", f"{ORIGIN}/api/make_call",
                                           json_body={"to": to}, headers=principal(user)))
    assert response.status_code == 201, response.get_body()
    return json.loads(response.get_body())["sid"]


def report(sid: str, status: str, **extra: str):
    form = {"AccountSid": ACCOUNT_SID, "CallSid": sid, "CallStatus": status, **extra}
    url = f"{ORIGIN}/api/status_callback"
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, form)
    answer = invoke("status_callback", request("POST", url, form=form,
                                               headers={"X-Twilio-Signature": signature}))
    assert answer.status_code == 204, answer.get_body()


def item(user: Caller, sid: str) -> threads.Item | None:
    return in_store(lambda store: threads.find(store, user.owner, sid))


def test_a_placed_call_is_on_the_callers_thread_and_claims_the_callee(on_azure):  # noqa: F811
    alice, callee = new_user(), unique.number()
    sid = make_call(alice, callee)
    placed = item(alice, sid)
    assert (placed.kind, placed.direction, placed.remote, placed.line, placed.status) == (
        "call", "outgoing", callee, FROM_NUMBER, "queued")
    summary = in_store(lambda store: threads.summary(store, alice.owner, callee))
    assert (summary.last_sid, summary.unread) == (sid, 0)
    [dial] = incoming(callee)  # the callee calls back: Alice rings
    assert dial[0].text == identity_for(alice, load_settings())


def test_the_final_status_of_a_call_joins_its_item_with_its_duration(on_azure):  # noqa: F811
    alice, callee = new_user(), unique.number()
    sid = make_call(alice, callee)
    report(sid, "ringing", SequenceNumber="1")
    assert item(alice, sid).status == "queued"  # steps on the way cost the thread nothing
    report(sid, "completed", SequenceNumber="3", CallDuration="61")
    done = item(alice, sid)
    assert (done.status, done.duration) == ("completed", 61)
    assert in_store(lambda store: threads.summary(store, alice.owner, callee)).last_status == (
        "completed")


def from_the_app(user: Caller, callee: str, sid: str) -> func.HttpResponse:
    """The TwiML App's voice webhook for a call ``user`` places in the app, signed."""
    form = {"AccountSid": ACCOUNT_SID, "ApplicationSid": "AP" + "c3" * 16, "CallSid": sid,
            "CallStatus": "ringing", "Direction": "inbound", "ApiVersion": "2010-04-01",
            "From": f"client:{identity_for(user, load_settings())}", "To": callee}
    url = f"{ORIGIN}/api/voice"
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, form)
    return invoke("voice", request("POST", url, form=form,
                                   headers={"X-Twilio-Signature": signature}))


def test_a_call_from_the_app_is_on_the_callers_thread(on_azure, monkeypatch):  # noqa: F811
    monkeypatch.setenv("ALLOWED_COUNTRIES", "US")
    alice, callee = new_user(), unique.number()
    sid = "CA" + secrets.token_hex(16)
    answer = from_the_app(alice, callee, sid)
    assert answer.status_code == 200 and b"<Dial" in answer.get_body()
    placed = item(alice, sid)
    assert (placed.kind, placed.direction, placed.remote) == ("call", "outgoing", callee)


def voicemail(on_azure, owner: Caller, seconds: int = 2, at: datetime | None = None) -> str:  # noqa: F811
    """A recording the sandbox keeps as Twilio does, and its voicemail on the owner's thread."""
    call_sid = "CA" + secrets.token_hex(16)
    kept = on_azure.call_soon(lambda: on_azure.sandbox.recordings.keep(
        ACCOUNT_SID, call_sid, seconds, datetime.now(UTC)))
    item = threads.Item(kept.sid, "voicemail", "incoming", unique.number(), FROM_NUMBER,
                        at or datetime.now(UTC), duration=seconds, call_sid=call_sid)
    in_store(lambda store: threads.keep(store, owner.owner, item, unread=True))
    return kept.sid


def media(sid: str, user: Caller, index: str = "0") -> func.HttpResponse:
    """GET api/media/{sid}/{index}, routed as the host routes it."""
    return invoke("media", func.HttpRequest(
        "GET", f"{ORIGIN}/api/media/{sid}/{index}", headers=principal(user), body=b"",
        route_params={"message_sid": sid, "n": index}))


def test_the_owner_hears_a_voicemail_through_media_and_nobody_else(on_azure):  # noqa: F811
    alice, bob = new_user(), new_user()
    sid = voicemail(on_azure, alice)
    answer = media(sid, alice)
    assert answer.status_code == 200, answer.get_body()
    body = answer.get_body()
    assert body[:4] == b"RIFF" and body[8:12] == b"WAVE"
    assert body == on_azure.call_soon(lambda: on_azure.sandbox.recordings.find(sid).body)
    assert (answer.headers["Content-Type"], answer.headers["Cache-Control"]) == (
        "audio/x-wav", "private")
    refused(media(sid, bob), 404, "not-found")
    refused(media("RE" + secrets.token_hex(16), alice), 404, "not-found")


def test_a_voicemail_past_the_retention_is_gone(on_azure):  # noqa: F811
    alice = new_user()
    sid = voicemail(on_azure, alice, at=datetime.now(UTC) - timedelta(days=31))
    refused(media(sid, alice), 404, "not-found")


def test_a_recording_over_media_max_bytes_is_refused(on_azure, monkeypatch):  # noqa: F811
    # A second of WAV fits: a longer recording (made by hand here) does not.
    monkeypatch.setenv("MEDIA_MAX_BYTES", "20000")
    monkeypatch.setenv("VOICEMAIL_MAX_SECONDS", "1")
    alice = new_user()
    refused(media(voicemail(on_azure, alice, seconds=3), alice), 502, "media-too-large")


@pytest.mark.parametrize("index", ["1", "9"])
def test_a_recording_has_one_file(on_azure, index):  # noqa: F811
    """File 1 of a recording is no file, as file 1 of a one-file MMS is: 404."""
    alice = new_user()
    sid = voicemail(on_azure, alice)
    refused(media(sid, alice, index), 404, "not-found")


def test_a_call_from_the_app_is_kept_while_its_limits_are_counted(on_azure, monkeypatch):  # noqa: F811
    """Twilio waits on the voice URL: the item's write and the limits go at the same time."""
    from shared import voice_calls

    at_once(monkeypatch, waits=(voice_calls, "admit"), on=(voice_calls, "remember_sent"))
    test_a_call_from_the_app_is_on_the_callers_thread(on_azure, monkeypatch)


def test_a_call_from_the_app_its_limits_refuse_shows_failed(on_azure, monkeypatch):  # noqa: F811
    monkeypatch.setenv("ALLOWED_COUNTRIES", "US")
    monkeypatch.setenv("RATE_LIMIT_PER_DESTINATION", "1")
    alice, callee = new_user(), unique.number()
    first, second = ("CA" + secrets.token_hex(16) for _ in range(2))
    assert b"<Dial" in from_the_app(alice, callee, first).get_body()
    assert b"too many calls" in from_the_app(alice, callee, second).get_body()
    assert (item(alice, first).status, item(alice, second).status) == ("ringing", "failed")
    status = invoke("status", func.HttpRequest(
        "GET", f"{ORIGIN}/api/status/{second}", headers=principal(alice), body=b"",
        route_params={"sid": second}))
    assert json.loads(status.get_body())["status"] == "failed"
