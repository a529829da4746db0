"""Calls from a phone to the Twilio number: whom they ring.

``answer`` is what the number's voice URL (``twiml``) and the TwiML App's (``voice``,
for a ``From`` that is no ``client:``) say while the caller waits, after ONE store read
(``contacts.route``):

- the owner blocked the caller: ``<Reject/>``, nothing stored (Twilio bills no call
  rejected before it is answered);
- an app user claims the caller (``VOICE_ROUTE_TO_CONTACT``: the one who last texted or
  called them from this number or its Messaging Service, by ``SMS_REPLY_ATTRIBUTION``):
  their Voice SDK identity rings for ``VOICE_RING_SECONDS``; else
  ``VOICE_INCOMING_IDENTITY`` rings, for its owner;
- nobody to ring: voicemail for the owner (``VOICE_INCOMING_IDENTITY``'s, else
  ``SMS_UNASSIGNED_OWNER``'s), through ``call_events`` as if unanswered, so that a call
  shows as missed even when the caller hangs up during the greeting.

What the call leaves is written once Twilio reports the outcome (``shared.call_events``),
never while the caller waits for the first answer. Twilio sends none of those requests
the owner, so the URLs the app hands it carry the owner's digest (``shared.keys``, as
its thread and push tag are keyed) and the time the call came in; the caller and the
line only where Twilio sends no ``From``/``To`` (the recordingStatusCallback). Twilio
signs them back. docs/security.md says what the URLs carry.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shared import contacts
from shared.client_identity import caller_of, identity_of
from shared.contacts import ADDRESS, unassigned_owner
from shared.keys import digest
from shared.logs import mask
from shared.phone import canonical_address
from shared.settings import Settings
from shared.store import StoreUnavailable, store_for
from shared.twiml import (
    dial_document,
    redirect_document,
    reject_document,
    ring_document,
    spoken_document,
)
from shared.urls import STATUS_CALLBACK_OVERRIDES, TWIML_OVERRIDES, function_url

logger = logging.getLogger("twilio_functions.incoming_calls")

FUNCTION = "call_events"
NO_INCOMING = "This number does not take calls. Goodbye."
#: What ``call_events`` is told: Twilio's ``<Dial>`` action (or the app's ``<Redirect>``
#: when nobody could be rung), ``<Record>``'s action, its recordingStatusCallback and
#: its transcribeCallback.
STEPS = ("dialed", "recorded", "recording", "transcribed")
#: The steps whose request from Twilio carries no ``From``/``To``: their URL carries the
#: caller and the line instead (the Record page's recordingStatusCallback parameters,
#: https://www.twilio.com/docs/voice/twiml/record#recordingstatuscallback).
WITHOUT_CALLER = ("recording",)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class CallContext:
    """What ``call_events`` needs and Twilio does not send: whose the call is (the
    owner's digest: ``owner`` when the app knows it), who called which line, and when
    it came in. Carried in the (signed) URLs the app gives Twilio."""

    owner_key: str
    remote: str
    line: str
    at: datetime
    owner: str | None = None

    def query(self, step: str) -> dict[str, str]:
        """The URL's query for ``step``: the caller and the line only where Twilio sends
        neither."""
        micros = (self.at - EPOCH) // timedelta(microseconds=1)
        where = {"remote": self.remote, "line": self.line} if step in WITHOUT_CALLER else {}
        return {"step": step, "owner": self.owner_key, **where, "at": str(micros)}


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
    fallback = fallback_owner(settings)
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
    context = CallContext(digest(routing.owner), remote, line, now, routing.owner)
    attributed = routing.why == ""
    identity = (identity_of(routing.owner, settings) if attributed
                else settings.voice_incoming_identity)
    action = events_url(request_url, settings, context, "dialed")
    if identity is None:
        return Answer(redirect_document(action), "nobody_to_ring")
    return Answer(ring_document(identity, timeout=settings.voice_ring_seconds, action=action),
                  "ringing_contact" if attributed else "ringing_incoming_identity")


def fallback_owner(settings: Settings) -> str | None:
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


def events_url(request_url: str, settings: Settings, context: CallContext, step: str) -> str:
    """``call_events`` for ``step``: TwiML steps retried as TwiML is, callbacks as status
    callbacks are (``shared.urls``)."""
    overrides = TWIML_OVERRIDES if step in ("dialed", "recorded") else STATUS_CALLBACK_OVERRIDES
    return function_url(request_url, settings, FUNCTION, context.query(step), overrides)
