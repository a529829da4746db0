"""Incoming calls on real Table Storage (Azurite): whom a call to the number rings, and
what it leaves on the caller's thread (``twiml``, ``voice`` and ``call_events``, signed as
Twilio signs them)."""

from __future__ import annotations

import asyncio
import json
import secrets
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest
import unique
from harness import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, invoke, refused, request
from live import ROOMY_LIMITS
from storage import run, shared_azurite
from test_voice import verbs
from twilio.request_validator import RequestValidator

from shared import contacts, threads
from shared.client_identity import identity_for
from shared.identity import Caller
from shared.keys import digest
from shared.settings import load_settings
from shared.store import store_for
from shared.urls import STATUS_CALLBACK_OVERRIDES, TWIML_OVERRIDES

ORIGIN = "https://contoso.azurewebsites.net"


@pytest.fixture(autouse=True)
def on_azure(app_env, monkeypatch):
    """Deployed with Easy Auth on (users have identities) and the store on Azurite."""
    for name, value in {"WEBSITE_HOSTNAME": "contoso.azurewebsites.net",
                        "WEBSITE_AUTH_ENABLED": "True",
                        "STATE_STORAGE": shared_azurite().connection_string,
                        **ROOMY_LIMITS}.items():
        monkeypatch.setenv(name, value)
    return app_env


def new_user() -> Caller:
    return Caller(f"{secrets.token_hex(6)}-user", "aad")


def in_store(use):
    async def act():
        return await use(store_for(load_settings()))
    return run(act())


def talked(owner: Caller, remote: str, line: str = FROM_NUMBER) -> None:
    """The owner texted or called ``remote`` from ``line``: as send_sms and make_call note it."""
    in_store(lambda store: contacts.note_sent(store, line, remote, owner.owner, datetime.now(UTC)))


def a_contact() -> tuple[Caller, str, str]:
    """A new user, a number of their own that they texted, and the SID of its next call."""
    alice, caller = new_user(), unique.number()
    talked(alice, caller)
    return alice, caller, "CA" + secrets.token_hex(16)


def signed_post(function: str, url: str, form: dict[str, str], *, signed: bool = True):
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, form)
    headers = {"X-Twilio-Signature": signature} if signed else {}
    return invoke(function, request("POST", url, form=form, headers=headers))


def call_params(caller: str, call_sid: str | None = None, to: str = FROM_NUMBER) -> dict[str, str]:
    """What Twilio posts to the number's voice URL as a call comes in."""
    return {"AccountSid": ACCOUNT_SID, "CallSid": call_sid or "CA" + secrets.token_hex(16),
            "From": caller, "To": to, "CallStatus": "ringing", "Direction": "inbound",
            "ApiVersion": "2010-04-01"}


def incoming(caller: str, call_sid: str | None = None, function: str = "twiml"):
    return verbs(signed_post(function, f"{ORIGIN}/api/{function}", call_params(caller, call_sid)))


def event(url: str, caller: str, form: dict[str, str]):
    """Twilio requesting a URL the app gave it: without its fragment (overrides), signed,
    with the call's From/To where Twilio sends them (not to a recordingStatusCallback)."""
    assert url.startswith(f"{ORIGIN}/api/call_events?")
    call = {} if "step=recording&" in url else {"From": caller, "To": FROM_NUMBER}
    return signed_post("call_events", url.split("#", 1)[0],
                       {"AccountSid": ACCOUNT_SID, **call, **form})


def dialed(dial, caller: str, form: dict[str, str]):
    """Twilio's ``<Dial>`` action for ``dial``, and the verbs the app answers."""
    return verbs(event(dial.get("action"), caller, form))


def item(owner: Caller, sid: str) -> threads.Item | None:
    return in_store(lambda store: threads.find(store, owner.owner, sid))


def test_a_contact_rings_the_user_who_talked_to_them_last():
    alice, caller = new_user(), unique.number()
    talked(alice, caller)
    [dial] = incoming(caller)
    assert dial.tag == "Dial"
    assert (dial.get("timeout"), dial.get("answerOnBridge"), dial.get("method")) == (
        "25", "true", "POST")
    [client] = list(dial)
    assert (client.tag, client.text) == ("Client", identity_for(alice, load_settings()))
    action = urlsplit(dial.get("action"))
    assert action.fragment == TWIML_OVERRIDES
    query = parse_qs(action.query)
    assert (query["step"], query["owner"]) == (["dialed"], [digest(alice.owner)])
    # Twilio sends the caller and the line with the action: the URL holds neither, nor
    # the owner's ID (request logs keep URLs).
    assert "remote" not in query and "line" not in query
    assert caller[1:] not in dial.get("action") and alice.user_id not in dial.get("action")


def test_the_voice_url_of_the_twiml_app_routes_a_phone_call_alike():
    alice, caller = new_user(), unique.number()
    talked(alice, caller)
    [dial] = incoming(caller, function="voice")
    assert dial[0].text == identity_for(alice, load_settings())


def test_ringing_writes_nothing_until_twilio_says_how_it_went():
    alice, caller, sid = a_contact()
    incoming(caller, sid)
    assert item(alice, sid) is None


def test_a_call_answered_is_kept_with_its_duration_and_hung_up_after():
    alice, caller, sid = a_contact()
    [dial] = incoming(caller, sid)
    [hangup] = dialed(dial, caller, {"CallSid": sid, "DialCallStatus": "completed",
                                                "DialCallDuration": "42"})
    assert hangup.tag == "Hangup"
    kept = item(alice, sid)
    assert (kept.kind, kept.direction, kept.status, kept.duration, kept.remote) == (
        "call", "incoming", "completed", 42, caller)
    summary = in_store(lambda store: threads.summary(store, alice.owner, caller))
    assert summary.unread == 0


@pytest.mark.parametrize("status", ["no-answer", "busy", "failed", "canceled"])
def test_a_call_not_answered_is_missed_and_goes_to_voicemail(status):
    alice, caller, sid = a_contact()
    [dial] = incoming(caller, sid)
    say, record = dialed(dial, caller, {"CallSid": sid, "DialCallStatus": status})
    assert (say.tag, say.get("voice")) == ("Say", "woman") and "leave a message" in say.text
    assert record.tag == "Record"
    assert (record.get("maxLength"), record.get("playBeep"), record.get("transcribe")) == (
        "120", "true", None)
    assert record.get("recordingStatusCallbackEvent") == "completed"
    assert urlsplit(record.get("recordingStatusCallback")).fragment == STATUS_CALLBACK_OVERRIDES
    assert parse_qs(urlsplit(record.get("action")).query)["step"] == ["recorded"]
    missed = item(alice, sid)
    assert (missed.kind, missed.status, missed.duration) == ("call", "missed", None)
    assert in_store(lambda store: threads.summary(store, alice.owner, caller)).unread == 1


def test_a_voicemail_is_kept_unread_and_its_transcription_joins_it(monkeypatch):
    monkeypatch.setenv("VOICEMAIL_TRANSCRIBE", "true")
    alice, caller, sid = new_user(), unique.number(), "CA" + secrets.token_hex(16)
    recording = "RE" + secrets.token_hex(16)
    talked(alice, caller)
    [dial] = incoming(caller, sid)
    _, record = dialed(dial, caller, {"CallSid": sid, "DialCallStatus": "no-answer"})
    assert record.get("transcribe") == "true"
    early = event(record.get("transcribeCallback"), caller, {
        "CallSid": sid, "RecordingSid": recording, "TranscriptionStatus": "completed",
        "TranscriptionText": "Call me back"})
    assert early.status_code == 503 and early.headers["Retry-After"]  # Twilio retries it
    [hangup] = verbs(event(record.get("action"), caller, {"CallSid": sid, "RecordingDuration": "7",
                                                  "Digits": "hangup"}))
    assert hangup.tag == "Hangup"
    kept = event(record.get("recordingStatusCallback"), caller, {
        "CallSid": sid, "RecordingSid": recording, "RecordingStatus": "completed",
        "RecordingDuration": "7", "RecordingChannels": "1", "RecordingSource": "RecordVerb"})
    assert kept.status_code == 204
    voicemail = item(alice, recording)
    assert (voicemail.kind, voicemail.call_sid, voicemail.duration, voicemail.remote) == (
        "voicemail", sid, 7, caller)
    assert in_store(lambda store: threads.summary(store, alice.owner, caller)).unread == 2
    assert event(record.get("transcribeCallback"), caller, {
        "CallSid": sid, "RecordingSid": recording, "TranscriptionStatus": "completed",
        "TranscriptionText": "Call me back"}).status_code == 204
    transcribed = item(alice, recording)
    assert (transcribed.transcription, transcribed.transcription_status) == (
        "Call me back", "completed")


def test_an_empty_or_failed_recording_leaves_no_voicemail():
    alice, caller, sid = a_contact()
    [dial] = incoming(caller, sid)
    _, record = dialed(dial, caller, {"CallSid": sid, "DialCallStatus": "no-answer"})
    for status, seconds in (("completed", "0"), ("failed", "3")):
        recording = "RE" + secrets.token_hex(16)
        assert event(record.get("recordingStatusCallback"), caller, {
            "CallSid": sid, "RecordingSid": recording, "RecordingStatus": status,
            "RecordingDuration": seconds}).status_code == 204
        assert item(alice, recording) is None


def test_a_blocked_caller_is_rejected_and_nothing_is_kept():
    alice, caller, sid = a_contact()
    in_store(lambda store: contacts.set_blocked(store, alice.owner, caller, True,
                                                datetime.now(UTC)))
    [reject] = incoming(caller, sid)
    assert (reject.tag, reject.attrib, list(reject)) == ("Reject", {}, [])
    assert item(alice, sid) is None


def test_an_opted_out_caller_still_reaches_voicemail():
    _, caller, sid = a_contact()
    from shared import opt_outs
    in_store(lambda store: opt_outs.record(store, (FROM_NUMBER,), caller, True,
                                           datetime.now(UTC)))
    [dial] = incoming(caller, sid)
    assert dial.tag == "Dial"
    _, record = dialed(dial, caller, {"CallSid": sid, "DialCallStatus": "busy"})
    assert record.tag == "Record"


def test_a_stranger_rings_the_incoming_identity_for_its_owner(monkeypatch):
    frank = new_user()
    monkeypatch.setenv("VOICE_INCOMING_IDENTITY", identity_for(frank, load_settings()))
    caller, sid = unique.number(), "CA" + secrets.token_hex(16)
    [dial] = incoming(caller, sid)
    assert dial[0].text == identity_for(frank, load_settings())
    dialed(dial, caller, {"CallSid": sid, "DialCallStatus": "no-answer"})
    assert item(frank, sid).status == "missed"


def test_a_contact_is_not_rung_when_routing_to_contacts_is_off(monkeypatch):
    alice, frank = new_user(), new_user()
    monkeypatch.setenv("VOICE_INCOMING_IDENTITY", identity_for(frank, load_settings()))
    monkeypatch.setenv("VOICE_ROUTE_TO_CONTACT", "false")
    caller = unique.number()
    talked(alice, caller)
    [dial] = incoming(caller)
    assert dial[0].text == identity_for(frank, load_settings())
    in_store(lambda store: contacts.set_blocked(store, frank.owner, caller, True,
                                                datetime.now(UTC)))
    assert incoming(caller)[0].tag == "Reject"


def test_nobody_to_ring_goes_to_voicemail_and_still_shows_missed(monkeypatch):
    """SMS_UNASSIGNED_OWNER reads what no user claims: with no identity to ring, the
    caller is sent to voicemail through call_events, which keeps the missed call."""
    reader = new_user()
    monkeypatch.setenv("SMS_UNASSIGNED_OWNER", f"aad:{reader.user_id}")
    caller, sid = unique.number(), "CA" + secrets.token_hex(16)
    [redirect] = incoming(caller, sid)
    assert (redirect.tag, redirect.get("method")) == ("Redirect", "POST")
    assert parse_qs(urlsplit(redirect.text).query)["owner"] == [digest(reader.owner)]
    say, record = verbs(event(redirect.text, caller, {"CallSid": sid}))
    assert (say.tag, record.tag) == ("Say", "Record")
    assert item(reader, sid).status == "missed"


def test_a_contact_without_an_identity_goes_to_voicemail(monkeypatch):
    """The anonymous owner without VOICE_SINGLE_USER_IDENTITY has no phone to ring."""
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "false")
    caller, sid = unique.number(), "CA" + secrets.token_hex(16)
    talked(Caller(), caller)
    [redirect] = incoming(caller, sid)
    assert redirect.tag == "Redirect"


def test_voicemail_off_says_nobody_is_available(monkeypatch):
    monkeypatch.setenv("VOICEMAIL_ENABLED", "false")
    alice, caller, sid = a_contact()
    [dial] = incoming(caller, sid)
    say, hangup = dialed(dial, caller, {"CallSid": sid, "DialCallStatus": "busy"})
    assert (say.tag, hangup.tag) == ("Say", "Hangup") and "Nobody is available" in say.text
    assert item(alice, sid).status == "missed"


def test_a_greeting_url_is_played_in_the_configured_length(monkeypatch):
    monkeypatch.setenv("VOICEMAIL_GREETING_URL", "https://example.com/greeting.mp3")
    monkeypatch.setenv("VOICEMAIL_MAX_SECONDS", "600")
    monkeypatch.setenv("MEDIA_MAX_BYTES", str(600 * 16_000 + 44))
    _, caller, sid = a_contact()
    [dial] = incoming(caller, sid)
    play, record = dialed(dial, caller, {"CallSid": sid, "DialCallStatus": "busy"})
    assert (play.tag, play.text) == ("Play", "https://example.com/greeting.mp3")
    assert record.get("maxLength") == "600"


def test_the_greeting_speaks_in_the_configured_voice(monkeypatch):
    monkeypatch.setenv("VOICEMAIL_GREETING", "Bonjour, laissez un message")
    monkeypatch.setenv("VOICEMAIL_VOICE", "Polly.Celine")
    monkeypatch.setenv("VOICEMAIL_LANGUAGE", "fr-FR")
    monkeypatch.setenv("VOICE_RING_SECONDS", "12")
    _, caller, sid = a_contact()
    [dial] = incoming(caller, sid)
    assert dial.get("timeout") == "12"
    say, _ = dialed(dial, caller, {"CallSid": sid, "DialCallStatus": "busy"})
    assert (say.text, say.get("voice"), say.get("language")) == (
        "Bonjour, laissez un message", "Polly.Celine", "fr-FR")


def test_a_retried_event_keeps_one_item():
    alice, caller, sid = a_contact()
    [dial] = incoming(caller, sid)
    for _ in range(2):
        dialed(dial, caller, {"CallSid": sid, "DialCallStatus": "no-answer"})
    assert in_store(lambda store: threads.summary(store, alice.owner, caller)).unread == 1


def test_call_events_need_twilios_signature():
    alice, caller, sid = a_contact()
    [dial] = incoming(caller, sid)
    url = dial.get("action").split("#", 1)[0]
    form = {"AccountSid": ACCOUNT_SID, "CallSid": sid, "DialCallStatus": "no-answer",
            "From": caller, "To": FROM_NUMBER}
    refused(signed_post("call_events", url, form, signed=False), 403, "invalid-signature")
    forged = url.replace(digest(alice.owner), digest("anonymous"))
    assert forged != url
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, form)
    refused(invoke("call_events", request("POST", forged, form=form,
                                          headers={"X-Twilio-Signature": signature})),
            403, "invalid-signature")
    assert item(alice, sid) is None


OWNER_KEY = "d4" * 16


@pytest.mark.parametrize(("query", "form", "field"), [
    (f"step=dance&owner={OWNER_KEY}&at=1", {}, "step"),
    ("step=dialed&owner=anonymous&at=1", {}, "owner"),
    (f"step=dialed&owner={OWNER_KEY}&at=1", {"From": "x"}, "From"),
    (f"step=dialed&owner={OWNER_KEY}&at=1", {"From": None}, "From"),
    (f"step=dialed&owner={OWNER_KEY}&at=-1", {}, "at"),
    (f"step=recording&owner={OWNER_KEY}&line=%2B15005550006&at=1", {"From": None}, "remote"),
    # Where Twilio sends the caller, it must be the one the URL was made for.
    (f"step=recording&owner={OWNER_KEY}&remote=%2B16282000000&line=%2B15005550006&at=1",
     {"From": "+14155550100"}, "From"),
])
def test_call_events_refuse_what_the_app_never_wrote(query, form, field):
    url = f"{ORIGIN}/api/call_events?{query}"
    sent = {"AccountSid": ACCOUNT_SID, "CallSid": "CA" + "d4" * 16, "From": unique.number(),
            "To": FROM_NUMBER, **form}
    answer = signed_post("call_events", url, {k: v for k, v in sent.items() if v is not None})
    assert refused(answer, 400, "invalid-field")["field"] == field


def test_call_events_take_only_post():
    answer = invoke("call_events", request("GET", f"{ORIGIN}/api/call_events?step=dialed"))
    refused(answer, 405, "method-not-allowed")


def test_a_transcription_for_a_thread_deleted_since_is_retried_then_dropped_by_twilio():
    """The 503 has a problem body like every refusal (Twilio retries it, then gives up)."""
    url = f"{ORIGIN}/api/call_events?step=transcribed&owner={OWNER_KEY}&at=1"
    answer = event(url, unique.number(), {
        "CallSid": "CA" + "d4" * 16, "RecordingSid": "RE" + "e5" * 16,
        "TranscriptionStatus": "failed"})
    assert json.loads(answer.get_body())["status"] == 503


@pytest.mark.parametrize(("env", "name"), [
    ({"VOICE_RING_SECONDS": "4"}, "VOICE_RING_SECONDS"),
    ({"VOICE_RING_SECONDS": "601"}, "VOICE_RING_SECONDS"),
    ({"VOICEMAIL_TRANSCRIBE": "true", "VOICEMAIL_MAX_SECONDS": "121"}, "VOICEMAIL_MAX_SECONDS"),
    ({"VOICEMAIL_GREETING_URL": "http://example.com/greeting.mp3"}, "VOICEMAIL_GREETING_URL"),
    ({"VOICEMAIL_GREETING_URL": "https://user:pw@example.com/g.mp3"}, "VOICEMAIL_GREETING_URL"),
    ({"VOICEMAIL_VOICE": "alice"}, "VOICEMAIL_VOICE"),
    ({"VOICEMAIL_VOICE": "Google.en-GB-Standard-A", "VOICEMAIL_LANGUAGE": "fr-FR"},
     "VOICEMAIL_LANGUAGE"),
    ({"VOICEMAIL_GREETING": "x" * 1001}, "VOICEMAIL_GREETING"),
    # media passes a recording on as WAV, 16,000 bytes a second: 5 MB holds 327 s.
    ({"VOICEMAIL_MAX_SECONDS": "328"}, "VOICEMAIL_MAX_SECONDS"),
    ({"VOICEMAIL_MAX_SECONDS": "120", "MEDIA_MAX_BYTES": "1024"}, "VOICEMAIL_MAX_SECONDS"),
])
def test_voicemail_settings_twilio_would_not_honour_are_refused(env, name):
    """Twilio would take them, but not honour them (or media could not pass it on)."""
    from shared.settings import SettingError

    with pytest.raises(SettingError) as raised:
        load_settings({"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN, **env})
    assert raised.value.name == name


def test_a_contact_texted_through_the_messaging_service_rings_its_sender(monkeypatch):
    """send_sms notes a text sent through the service under the service's SID."""
    service = "MG" + secrets.token_hex(16)
    monkeypatch.setenv("TWILIO_MESSAGING_SERVICE_SID", service)
    alice, caller = new_user(), unique.number()
    talked(alice, caller, line=service)
    [dial] = incoming(caller)
    assert (dial.tag, dial[0].text) == ("Dial", identity_for(alice, load_settings()))


def test_a_voicemail_too_short_to_transcribe_says_so(monkeypatch):
    """Twilio transcribes only recordings of 2 to 120 s: a 1-s one will have no text."""
    monkeypatch.setenv("VOICEMAIL_TRANSCRIBE", "true")
    alice, caller, sid = a_contact()
    [dial] = incoming(caller, sid)
    _, record = dialed(dial, caller, {"CallSid": sid, "DialCallStatus": "busy"})
    short, long = "RE" + secrets.token_hex(16), "RE" + secrets.token_hex(16)
    for recording, seconds in ((short, "1"), (long, "2")):
        assert event(record.get("recordingStatusCallback"), caller, {
            "CallSid": sid, "RecordingSid": recording, "RecordingStatus": "completed",
            "RecordingDuration": seconds}).status_code == 204
    assert item(alice, short).transcription_status == "absent"
    assert item(alice, long).transcription_status is None  # on its way


def test_unsigned_call_events_are_refused_off_a_developers_machine(monkeypatch):
    """With signature checks off, a forged event would write into anyone's thread."""
    alice, caller, sid = a_contact()
    [dial] = incoming(caller, sid)
    monkeypatch.setenv("TWILIO_VALIDATE_SIGNATURE", "false")
    form = {"AccountSid": ACCOUNT_SID, "CallSid": sid, "DialCallStatus": "no-answer",
            "From": caller, "To": FROM_NUMBER}
    action = dial.get("action").split("#", 1)[0]
    refused(signed_post("call_events", action, form, signed=False), 403, "webhook-refused")
    assert item(alice, sid) is None
    monkeypatch.delenv("WEBSITE_HOSTNAME")  # the developer's machine, on loopback
    local = action.replace(ORIGIN, "http://127.0.0.1:7071")
    say, _ = verbs(signed_post("call_events", local, form, signed=False))
    assert say.tag == "Say" and item(alice, sid).status == "missed"


def at_once(monkeypatch, waits: tuple[object, str], on: tuple[object, str]) -> None:
    """Make function ``waits`` (a module, a name) wait until ``on`` starts: two steps that
    must run at the same time pass; run in turn, the first times out and the test fails."""
    started: list[asyncio.Event] = []
    waiting, starting = getattr(*waits), getattr(*on)

    def event() -> asyncio.Event:
        if not started:
            started.append(asyncio.Event())
        return started[0]

    async def wait_then(*args, **kwargs):
        await asyncio.wait_for(event().wait(), 30)
        return await waiting(*args, **kwargs)

    async def start(*args, **kwargs):
        event().set()
        return await starting(*args, **kwargs)

    monkeypatch.setattr(*waits, wait_then)
    monkeypatch.setattr(*on, start)


def test_a_missed_calls_push_is_queued_while_its_item_is_written(monkeypatch):
    """The caller waits for the voicemail greeting on both: at the same time, not in turn."""
    from shared import push

    at_once(monkeypatch, waits=(threads, "keep"), on=(push, "enqueue"))
    alice, caller, sid = a_contact()
    [dial] = incoming(caller, sid)
    _, record = dialed(dial, caller, {"CallSid": sid, "DialCallStatus": "no-answer"})
    assert record.tag == "Record" and item(alice, sid).status == "missed"


def test_voicemail_settings_that_fit_are_taken():
    base = {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN}
    assert load_settings({**base, "VOICEMAIL_MAX_SECONDS": "327"}).voicemail_max_seconds == 327
    assert load_settings({**base, "VOICEMAIL_MAX_SECONDS": "3600", "VOICEMAIL_ENABLED": "false"})
