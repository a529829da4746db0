"""Calls from a phone to the Twilio number: whom they ring, and what they leave behind.

``answer`` is what the number's voice URL (``twiml``) and the TwiML App's (``voice``,
for a ``From`` that is no ``client:``) say while the caller waits, after ONE store read
(``contacts.route``):

- the owner blocked the caller: ``<Reject/>``, nothing stored (Twilio bills no call
  rejected before it is answered);
- an app user claims the caller (``VOICE_ROUTE_TO_CONTACT``: the one who last texted or
  called them from this number, by ``SMS_REPLY_ATTRIBUTION``): their Voice SDK identity
  rings for ``VOICE_RING_SECONDS``; else ``VOICE_INCOMING_IDENTITY`` rings, for its owner;
- nobody to ring: voicemail for the owner (``VOICE_INCOMING_IDENTITY``'s, else
  ``SMS_UNASSIGNED_OWNER``'s), through ``call_events`` as if unanswered, so that a call
  shows as missed even when the caller hangs up during the greeting.

The call's items are written once Twilio reports the outcome (``call_events``), never
while the caller waits for the first answer: an answered call (with its duration),
a missed one (unread), a voicemail (unread) and its transcription. Twilio sends
none of them the owner, so the URLs the app hands it carry the owner, the caller and
the time the call came in: Twilio signs them back, and already knows the owner from
the identity it rings.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shared import contacts, push, threads
from shared.client_identity import caller_of, identity_of
from shared.conversations import ADDRESS, unassigned_owner
from shared.logs import mask
from shared.phone import canonical_address
from shared.problems import Problem, invalid_field, store_unavailable
from shared.settings import Settings
from shared.store import RETRY_AFTER, Store, StoreUnavailable, store_for
from shared.twiml import (
    Greeting,
    Recording,
    dial_document,
    hangup_document,
    redirect_document,
    reject_document,
    ring_document,
    spoken_document,
    voicemail_document,
)
from shared.urls import STATUS_CALLBACK_OVERRIDES, TWIML_OVERRIDES, function_url

logger = logging.getLogger("twilio_functions.incoming_calls")

FUNCTION = "call_events"
NO_INCOMING = "This number does not take calls. Goodbye."
UNAVAILABLE = "Nobody is available to take your call. Goodbye."
#: What ``call_events`` is told: Twilio's ``<Dial>`` action (or the app's ``<Redirect>``
#: when nobody could be rung), ``<Record>``'s action, its recordingStatusCallback and
#: its transcribeCallback.
STEPS = ("dialed", "recorded", "recording", "transcribed")
# An owner as shared.identity writes them, at most 1,030 characters.
_OWNER = re.compile(r"anonymous|user:[\x21-\x7e]{3,1030}")
_MICROS = re.compile(r"[0-9]{1,17}")
#: Twilio transcribes at most 120 seconds of speech: far below this.
MAX_TRANSCRIPTION = 8000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class CallContext:
    """What ``call_events`` needs and Twilio does not send: whose the call is, who called
    which line, and when it came in. Carried in the (signed) URLs the app gives Twilio."""

    owner: str
    remote: str
    line: str
    at: datetime

    def query(self, step: str) -> dict[str, str]:
        micros = (self.at - _EPOCH) // timedelta(microseconds=1)
        return {"step": step, "owner": self.owner, "remote": self.remote, "line": self.line,
                "at": str(micros)}


@dataclass(frozen=True)
class Answer:
    """The TwiML for the caller, and what happened, for the log line."""

    document: str
    outcome: str


async def answer(settings: Settings, from_: str, to: str, request_url: str,
                 now: datetime) -> Answer:
    """The TwiML for a call from ``from_`` to the Twilio number ``to``."""
    store = store_for(settings)
    remote, line = canonical_address(from_), canonical_address(to)
    fallback = _fallback_owner(settings)
    if store is None or not (ADDRESS.fullmatch(remote) and ADDRESS.fullmatch(line)):
        return _untracked(settings, "no store" if store is None else "no caller number")
    try:
        if settings.voice_route_to_contact:
            # Texts sent through the Messaging Service are noted under its SID: a texter
            # who calls back reaches its sender all the same (still one partition query).
            routing = await contacts.route(store, settings, line, remote, now, fallback,
                                           service=settings.messaging_service_sid)
        else:  # nobody is rung for being a contact: only the fallback's block counts
            blocked = fallback is not None and await contacts.is_blocked(store, fallback,
                                                                          remote)
            routing = contacts.Routing(fallback, blocked, "VOICE_ROUTE_TO_CONTACT is off")
    except StoreUnavailable as error:
        logger.error("store=unavailable from=%s cause=%s: the call is routed as if "
                     "nobody claimed it, and not stored", mask(remote),
                     str(error).replace(" ", "_"))
        return _untracked(settings, "store unavailable")
    if routing.blocked:
        return Answer(reject_document(), "rejected_blocked")
    if routing.owner is None:
        return _untracked(settings, routing.why)
    context = CallContext(routing.owner, remote, line, now)
    attributed = routing.why == ""
    identity = (identity_of(routing.owner, settings) if attributed
                else settings.voice_incoming_identity)
    if identity is None:
        return Answer(redirect_document(_events_url(request_url, settings, context, "dialed")),
                      "nobody_to_ring")
    action = _events_url(request_url, settings, context, "dialed")
    return Answer(ring_document(identity, timeout=settings.voice_ring_seconds, action=action),
                  "ringing_contact" if attributed else "ringing_incoming_identity")


def _fallback_owner(settings: Settings) -> str | None:
    """Whose the calls nobody claims are: ``VOICE_INCOMING_IDENTITY``'s owner (if
    ``voice_token`` issues it), else ``SMS_UNASSIGNED_OWNER``'s."""
    identity = settings.voice_incoming_identity
    caller = caller_of(identity, settings) if identity is not None else None
    return caller.owner if caller is not None else unassigned_owner(settings)


def _untracked(settings: Settings, why: str) -> Answer:
    """A call kept for nobody: ``VOICE_INCOMING_IDENTITY`` rings (as it always did), or
    the caller hears that the number takes no calls (a voicemail nobody could hear)."""
    logger.info("incoming call kept for nobody: %s", why.replace(" ", "_"))
    if settings.voice_incoming_identity is not None:
        return Answer(dial_document(client=settings.voice_incoming_identity),
                      "ringing_untracked")
    return Answer(spoken_document(NO_INCOMING, hang_up=True), "not_taken")


def _events_url(request_url: str, settings: Settings, context: CallContext, step: str) -> str:
    """``call_events`` for ``step``: TwiML steps retried as TwiML is, callbacks as status
    callbacks are (``shared.urls``)."""
    overrides = TWIML_OVERRIDES if step in ("dialed", "recorded") else STATUS_CALLBACK_OVERRIDES
    return function_url(request_url, settings, FUNCTION, context.query(step), overrides)


def unanswered_document(settings: Settings, context: CallContext, request_url: str) -> str:
    """What a caller nobody answered hears: the voicemail greeting and the beep, or
    (``VOICEMAIL_ENABLED`` off) that nobody is available."""
    if not settings.voicemail_enabled:
        return spoken_document(UNAVAILABLE, hang_up=True)
    greeting = Greeting(settings.voicemail_greeting, settings.voicemail_voice,
                        settings.voicemail_language, settings.voicemail_greeting_url)
    recording = Recording(
        settings.voicemail_max_seconds,
        action=_events_url(request_url, settings, context, "recorded"),
        status_callback=_events_url(request_url, settings, context, "recording"),
        transcribe_callback=(_events_url(request_url, settings, context, "transcribed")
                             if settings.voicemail_transcribe else None))
    return voicemail_document(greeting, recording)


def read_context(params: Mapping[str, str]) -> CallContext:
    """The context ``_events_url`` put in the URL (signed by Twilio); 400 if it is not one."""
    owner = params.get("owner", "")
    if not _OWNER.fullmatch(owner):
        raise invalid_field("owner", "must be the owner the app put in this URL")
    addresses = {name: params.get(name, "") for name in ("remote", "line")}
    for name, value in addresses.items():
        if not ADDRESS.fullmatch(value):
            raise invalid_field(name, "must be a phone number (E.164) or a short code")
    micros = params.get("at", "")
    if not _MICROS.fullmatch(micros):
        raise invalid_field("at", "must be the time the call came in, in microseconds")
    at = _EPOCH + timedelta(microseconds=int(micros))
    return CallContext(owner, addresses["remote"], addresses["line"], at)


# --- what a call leaves: call_events --------------------------------------------------


def read_step(query: Mapping[str, str]) -> str:
    step = query.get("step", "")
    if step not in STEPS:
        raise invalid_field("step", "must be " + ", ".join(STEPS))
    return step


async def carry_on(settings: Settings, step: str, context: CallContext,
                   params: Mapping[str, str], request_url: str) -> Answer:
    """The TwiML after ``<Dial>`` (or the app's ``<Redirect>``) and after ``<Record>``.

    The caller is on the line: a store failure is logged, never answered as an error
    (Twilio would speak "an application error has occurred").
    """
    if step == "recorded":
        return Answer(hangup_document(), "recorded")
    sid = _sid(params, "CallSid", "CA")
    # Twilio's <Dial> action always says how the dial ended; the app's <Redirect> (nobody
    # to ring) does not.
    status = params.get("DialCallStatus")
    answered = status in ("completed", "answered")
    duration = _whole(params, "DialCallDuration") if answered else None
    item = threads.Item(sid, "call", "incoming", context.remote, context.line, context.at,
                        status="completed" if answered else "missed", duration=duration)
    kept = await _keep(settings, context.owner, item, unread=not answered)
    if not answered and kept == "kept":
        await push.enqueue(settings, context.owner, "missed_call", context.remote, sid)
    if answered:
        return Answer(hangup_document(), f"answered_{kept}")
    return Answer(unanswered_document(settings, context, request_url),
                  f"{'missed' if status else 'nobody_rung'}_{kept}")


async def record_event(settings: Settings, step: str, context: CallContext,
                       params: Mapping[str, str], now: datetime) -> tuple[str, str]:
    """A voicemail's recording, or its transcription: the SID and the outcome. 503 when
    the store cannot take it (yet): the URL asks Twilio to retry on a 5xx."""
    recording = _sid(params, "RecordingSid", "RE")
    store = store_for(settings)
    if store is None:
        return recording, "untracked"
    try:
        if step == "recording":
            outcome = await _voicemail(store, context, recording, params, now)
            if outcome == "kept":
                await push.enqueue(settings, context.owner, "voicemail", context.remote,
                                   recording)
            return recording, outcome
        return recording, await _transcription(store, recording, params)
    except StoreUnavailable:
        raise store_unavailable(RETRY_AFTER, "the store cannot be reached; retry later") from None


async def _voicemail(store: Store, context: CallContext, recording: str,
                     params: Mapping[str, str], now: datetime) -> str:
    duration = _whole(params, "RecordingDuration") or 0
    if params.get("RecordingStatus") != "completed" or duration <= 0:
        return f"not_kept_{params.get('RecordingStatus', 'unknown')}"
    item = threads.Item(recording, "voicemail", "incoming", context.remote, context.line,
                        now, duration=duration, call_sid=_sid(params, "CallSid", "CA"))
    return "kept" if await threads.keep(store, context.owner, item, unread=True) else "duplicate"


async def _transcription(store: Store, recording: str, params: Mapping[str, str]) -> str:
    status = params.get("TranscriptionStatus")
    if status not in ("completed", "failed"):
        raise invalid_field("TranscriptionStatus", "must be completed or failed")
    text = params.get("TranscriptionText", "") if status == "completed" else None
    text = text[:MAX_TRANSCRIPTION] if text is not None else None
    changes = {"transcription": text, "transcription_status": status}
    if not await threads.update(store, recording, changes):
        raise Problem(503, "not-stored-yet", f"voicemail {recording} is not stored yet; retry "
                      "later", title="Not stored yet", headers={"Retry-After": str(RETRY_AFTER)})
    return f"transcription_{status}"


async def _keep(settings: Settings, owner: str, item: threads.Item, *, unread: bool) -> str:
    store = store_for(settings)
    if store is None:
        return "untracked"
    try:
        return "kept" if await threads.keep(store, owner, item, unread=unread) else "duplicate"
    except StoreUnavailable as error:
        logger.error("store=unavailable sid=%s cause=%s: the call is missing from its thread",
                     item.sid, str(error).replace(" ", "_"))
        return "unstored"


def _sid(params: Mapping[str, str], name: str, prefix: str) -> str:
    value = params.get(name, "")
    if not re.fullmatch(rf"{prefix}[0-9a-f]{{32}}", value):
        raise invalid_field(name, f"must be a Twilio SID starting with {prefix}")
    return value


def _whole(params: Mapping[str, str], name: str) -> int | None:
    value = params.get(name)
    if not value:
        return None
    if not (value.isascii() and value.isdecimal() and len(value) <= 9):
        raise invalid_field(name, "must be a whole number of seconds")
    return int(value)
