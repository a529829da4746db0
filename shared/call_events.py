"""What an incoming call leaves on the caller's thread, as Twilio reports it (``call_events``).

``shared.incoming_calls`` hands Twilio the URLs; here each step carries on:

- ``dialed`` (the ``<Dial>`` action, or the app's ``<Redirect>`` when nobody could be
  rung): answered, a call item ``completed`` with its duration; else a missed call
  (unread, pushed) and the voicemail TwiML;
- ``recorded`` (``<Record>``'s action): hang up;
- ``recording`` (its recordingStatusCallback): the voicemail (unread, pushed);
- ``transcribed`` (its transcribeCallback): the voicemail's text.

The URL names the owner by digest; the owner comes back from the caller's contact rows
(``contacts.owner_keyed``) or the settings (``VOICE_INCOMING_IDENTITY``'s, the unassigned
reader). The caller and the line are Twilio's ``From``/``To`` where it sends them, else
the URL's, and must agree with the URL's where both are there.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from shared import contacts, push, threads
from shared.contacts import ADDRESS
from shared.conversations import ITEM_SID
from shared.incoming_calls import (
    EPOCH,
    STEPS,
    WITHOUT_CALLER,
    Answer,
    CallContext,
    events_url,
    fallback_owner,
)
from shared.keys import digest
from shared.origin import is_loopback
from shared.phone import canonical_address
from shared.problems import Problem, invalid_field, store_unavailable, webhook_refused
from shared.settings import MAX_TRANSCRIBED, Settings
from shared.store import RETRY_AFTER, Store, StoreUnavailable, store_for
from shared.twiml import Greeting, Recording, hangup_document, spoken_document, voicemail_document

logger = logging.getLogger("twilio_functions.call_events")

UNAVAILABLE = "Nobody is available to take your call. Goodbye."
#: Twilio transcribes at most 120 seconds of speech: far below this.
MAX_TRANSCRIPTION = 8000
#: Twilio transcribes only recordings of 2 to 120 seconds (the Record page, ``transcribe``):
#: outside, no transcribeCallback ever comes.
TRANSCRIBED_SECONDS = range(2, MAX_TRANSCRIBED + 1)
#: ``transcription_status`` of a voicemail Twilio will not transcribe (too short or long).
ABSENT = "absent"
_OWNER_KEY = re.compile(r"[0-9a-f]{32}")
_MICROS = re.compile(r"[0-9]{1,17}")


def admit_unsigned(request_url: str, settings: Settings) -> None:
    """403 unless Twilio's signature is checked, or the request is local: with
    ``TWILIO_VALIDATE_SIGNATURE`` off, anyone could write a missed call into any thread
    and queue its owner a push. Local as ``shared.origin`` has it: no public origin
    configured, and the request's host a loopback literal."""
    if settings.validate_signature:
        return
    if settings.public_origin is None and is_loopback(urlsplit(request_url)):
        return
    raise webhook_refused("call_events takes only requests Twilio signed, unless it runs on "
                          "a developer's machine (TWILIO_VALIDATE_SIGNATURE is off)",
                          cause="unsigned call event from a non-loopback host")


def read_step(query: Mapping[str, str]) -> str:
    """The step the app put in the URL; 400 if it is not one of ``STEPS``."""
    step = query.get("step", "")
    if step not in STEPS:
        raise invalid_field("step", "must be " + ", ".join(STEPS))
    return step


def read_context(step: str, query: Mapping[str, str], params: Mapping[str, str]) -> CallContext:
    """The context ``events_url`` put in the URL (signed by Twilio), with the caller and
    the line from Twilio's ``From``/``To`` where it sends them; 400 if it is not one, or
    if Twilio's ``From``/``To`` are not the URL's."""
    owner_key = query.get("owner", "")
    if not _OWNER_KEY.fullmatch(owner_key):
        raise invalid_field("owner", "must be the owner's digest the app put in this URL")
    where: dict[str, str] = {}
    for name, twilio_name in (("remote", "From"), ("line", "To")):
        in_url, sent = query.get(name), params.get(twilio_name)
        sent = canonical_address(sent) if sent else None
        if in_url is not None and sent is not None and in_url != sent:
            raise invalid_field(twilio_name, f"is not the {name} this URL was made for")
        value = in_url if step in WITHOUT_CALLER else sent
        if value is None or not ADDRESS.fullmatch(value):
            raise invalid_field(name if step in WITHOUT_CALLER else twilio_name,
                                "must be a phone number (E.164) or a short code")
        where[name] = value
    micros = query.get("at", "")
    if not _MICROS.fullmatch(micros):
        raise invalid_field("at", "must be the time the call came in, in microseconds")
    return CallContext(owner_key, where["remote"], where["line"],
                       EPOCH + timedelta(microseconds=int(micros)))


async def _owner(settings: Settings, store: Store, context: CallContext) -> str | None:
    """The owner the URL's digest names: the unclaimed calls' owner, else the one who
    texted, called or blocked the caller."""
    fallback = fallback_owner(settings)
    if fallback is not None and digest(fallback) == context.owner_key:
        return fallback
    return await contacts.owner_keyed(store, context.remote, context.owner_key)


def unanswered_document(settings: Settings, context: CallContext, request_url: str) -> str:
    """What a caller nobody answered hears: the voicemail greeting and the beep, or
    (``VOICEMAIL_ENABLED`` off) that nobody is available."""
    if not settings.voicemail_enabled:
        return spoken_document(UNAVAILABLE, hang_up=True)
    greeting = Greeting(settings.voicemail_greeting, settings.voicemail_voice,
                        settings.voicemail_language, settings.voicemail_greeting_url)
    recording = Recording(
        settings.voicemail_max_seconds,
        action=events_url(request_url, settings, context, "recorded"),
        status_callback=events_url(request_url, settings, context, "recording"),
        transcribe_callback=(events_url(request_url, settings, context, "transcribed")
                             if settings.voicemail_transcribe else None))
    return voicemail_document(greeting, recording)


async def carry_on(settings: Settings, step: str, context: CallContext,
                   params: Mapping[str, str], request_url: str) -> Answer:
    """The TwiML after ``<Dial>`` (or the app's ``<Redirect>``) and after ``<Record>``.

    The caller is on the line: a store failure is logged, never answered as an error
    (Twilio would speak "an application error has occurred"), and the missed call's
    push is queued beside the item's write, not after it.
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
    store = store_for(settings)
    kept = "untracked"
    if store is not None:
        kept = await _keep(settings, store, context, item, answered)
    if answered:
        return Answer(hangup_document(), f"answered_{kept}")
    if kept == "owner_unknown":
        return Answer(spoken_document(UNAVAILABLE, hang_up=True), "missed_owner_unknown")
    return Answer(unanswered_document(settings, context, request_url),
                  f"{'missed' if status else 'nobody_rung'}_{kept}")


async def _keep(settings: Settings, store: Store, context: CallContext, item: threads.Item,
                answered: bool) -> str:
    """Keep the call item, and for a missed one queue its push at the same time (a retried
    ``<Dial>`` action, which Twilio sends only when the app's answer failed, may push
    twice: better than the caller waiting for both in turn)."""
    try:
        owner = await _owner(settings, store, context)
        if owner is None:
            logger.error("call=%s: no owner has the digest its URL names (their contact rows "
                         "are gone): the call is missing from its thread", item.sid)
            return "owner_unknown"
        keeping = threads.keep(store, owner, item, unread=not answered)
        if answered:
            return "kept" if await keeping else "duplicate"
        kept, _ = await asyncio.gather(keeping, push.enqueue(
            settings, owner, "missed_call", context.remote, item.sid))
        return "kept" if kept else "duplicate"
    except StoreUnavailable as error:
        logger.error("store=unavailable sid=%s cause=%s: the call is missing from its thread",
                     item.sid, str(error).replace(" ", "_"))
        return "unstored"


async def record_event(settings: Settings, step: str, context: CallContext,
                       params: Mapping[str, str], now: datetime) -> tuple[str, str]:
    """A voicemail's recording, or its transcription: the SID and the outcome. 503 when
    the store cannot take it (yet): the URL asks Twilio to retry on a 5xx."""
    recording = _sid(params, "RecordingSid", "RE")
    store = store_for(settings)
    if store is None:
        return recording, "untracked"
    try:
        if step == "transcribed":
            return recording, await _transcription(store, recording, params)
        owner = await _owner(settings, store, context)
        if owner is None:
            return recording, "owner_unknown"
        outcome = await _voicemail(settings, store, owner, context, recording, params, now)
        if outcome == "kept":
            await push.enqueue(settings, owner, "voicemail", context.remote, recording)
        return recording, outcome
    except StoreUnavailable:
        raise store_unavailable(RETRY_AFTER, "the store cannot be reached; retry later") from None


async def _voicemail(settings: Settings, store: Store, owner: str, context: CallContext,
                     recording: str, params: Mapping[str, str], now: datetime) -> str:
    """Keep a completed recording as the owner's voicemail, unread. A length Twilio does
    not transcribe has its ``transcription_status`` ``absent`` at once (none will come)."""
    duration = _whole(params, "RecordingDuration") or 0
    if params.get("RecordingStatus") != "completed" or duration <= 0:
        return f"not_kept_{params.get('RecordingStatus', 'unknown')}"
    untranscribed = settings.voicemail_transcribe and duration not in TRANSCRIBED_SECONDS
    item = threads.Item(recording, "voicemail", "incoming", context.remote, context.line,
                        now, duration=duration, call_sid=_sid(params, "CallSid", "CA"),
                        transcription_status=ABSENT if untranscribed else None)
    return "kept" if await threads.keep(store, owner, item, unread=True) else "duplicate"


async def _transcription(store: Store, recording: str, params: Mapping[str, str]) -> str:
    """Join Twilio's transcription to its voicemail; 503 (retried) until the voicemail is
    kept: the transcribeCallback may come first."""
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


def _sid(params: Mapping[str, str], name: str, prefix: str) -> str:
    """Twilio's SID ``name``, which must start with ``prefix``; 400 otherwise."""
    value = params.get(name, "")
    if not (value.startswith(prefix) and ITEM_SID.fullmatch(value)):
        raise invalid_field(name, f"must be a Twilio SID starting with {prefix}")
    return value


def _whole(params: Mapping[str, str], name: str) -> int | None:
    """Twilio's whole number of seconds ``name`` (None if absent); 400 if it is not one."""
    value = params.get(name)
    if not value:
        return None
    if not (value.isascii() and value.isdecimal() and len(value) <= 9):
        raise invalid_field(name, "must be a whole number of seconds")
    return int(value)
