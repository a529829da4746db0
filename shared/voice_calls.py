"""What the TwiML App's Voice URL answers: whom a call from the app, or to the Twilio
number, reaches.

A call from the app (``From=client:<identity>``, an identity ``voice_token``
issues under the current settings: ``shared.client_identity``) to a phone
number obeys exactly what ``make_call`` obeys (the destination policy,
``ALLOWED_COUNTRIES`` and the rate limits, counted for the user the identity
names), dials the number's canonical form, and goes out with the app's caller
ID; to another app user (again an identity ``voice_token`` issues) only when
``VOICE_ALLOW_CLIENT_TO_CLIENT``.
A call the app will not connect is told so aloud and hung up (Twilio would
otherwise read an error answer as "application error" to the caller), and
logged. A call to the Twilio number from a phone is routed as the number's own voice URL
routes it (``shared.incoming_calls``). A call from the app goes on its caller's thread
with the number (``shared.deliveries.remember_sent``), written while the rate limits are
counted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from shared import incoming_calls
from shared.client_identity import CLIENT_PREFIX, caller_of, client_identity
from shared.deliveries import note_sent, record_report, remember_sent, status_callback_url
from shared.delivery_status import CALL_ORDER, StatusReport, is_sid
from shared.keys import digest
from shared.limits import admit
from shared.logs import mask
from shared.outgoing import default_sender, destination_policy
from shared.phone import DestinationRefused, NumberError
from shared.problems import Problem, invalid_field
from shared.settings import Settings
from shared.twiml import dial_document, spoken_document

logger = logging.getLogger("twilio_functions.voice")

NOT_PLACED = "This call cannot be placed from this app. Goodbye."
NOT_ALLOWED = "This app cannot call that number. Goodbye."
NOT_A_NUMBER = "That is not a phone number this app can call. Goodbye."
NO_CLIENTS = "Calls between app users are not enabled. Goodbye."
TOO_MANY = "You have placed too many calls. Please try again later. Goodbye."
UNAVAILABLE = "Calls cannot be placed right now. Please try again later. Goodbye."
_ADDRESS_LENGTH = 160  # client: plus 121 characters, or a number, with room to spare


@dataclass(frozen=True)
class VoiceCall:
    """The parameters of Twilio's voice webhook this app acts on."""

    sid: str
    from_: str
    to: str
    status: str


class CallRefused(Exception):
    """A call the app will not connect: what the caller hears, and why (for the log)."""

    def __init__(self, spoken: str, cause: str, to: str | None = None) -> None:
        super().__init__(cause)
        self.spoken, self.cause, self.to = spoken, cause, to

    def document(self) -> str:
        return spoken_document(self.spoken, hang_up=True)

    def log(self, function: str, call: VoiceCall) -> None:
        logger.warning("function=%s refused call=%s to=%s cause=%s", function, call.sid,
                       mask(self.to) if self.to else "-", self.cause.replace(" ", "_"))


def read_voice_call(params: Mapping[str, str]) -> VoiceCall:
    """The call ``read_webhook`` checked; 400 if it lacks what a voice webhook carries."""
    sid = params.get("CallSid", "")
    if not (is_sid(sid) and sid.startswith("CA")):
        raise invalid_field("CallSid", "must be a Twilio call SID")
    addresses = {name: params.get(name, "") for name in ("From", "To")}
    for name, value in addresses.items():
        if not value or len(value) > _ADDRESS_LENGTH:
            raise invalid_field(name, "must be a phone number or client address")
    status = params.get("CallStatus", "")
    return VoiceCall(sid, addresses["From"], addresses["To"],
                     status if status in CALL_ORDER else "ringing")


async def connect(call: VoiceCall, settings: Settings, request_url: str) -> str:
    """The TwiML that connects ``call``; ``CallRefused`` when it must not be connected.

    A call from the app to a number has its dialed leg report to ``status_callback``
    (found by ``ParentCallSid``), so its ``status/{sid}`` history shows it answered.
    """
    now = datetime.now(UTC)
    if call.from_.startswith(CLIENT_PREFIX):
        return await _from_app(call, settings, request_url, now)
    return (await incoming_calls.answer(settings, call.from_, call.to, request_url, now)).document


async def _from_app(call: VoiceCall, settings: Settings, request_url: str,
                    now: datetime) -> str:
    identity = client_identity(call.from_)
    caller = caller_of(identity, settings) if identity else None
    if identity is None or caller is None:
        raise CallRefused(NOT_PLACED, "not a client identity this app issues")
    if call.to.startswith(CLIENT_PREFIX):
        callee = client_identity(call.to)
        if not settings.voice_allow_client_to_client:
            raise CallRefused(NO_CLIENTS, "client-to-client calls are off")
        if callee is None or caller_of(callee, settings) is None:
            raise CallRefused(NOT_PLACED, "not a client identity this app issues in To")
        return dial_document(client=callee)  # untracked: no status/{sid} for these
    try:
        number = destination_policy(settings).check(call.to)
    except NumberError as error:
        raise CallRefused(NOT_A_NUMBER, str(error), call.to) from None
    except DestinationRefused as error:
        raise CallRefused(NOT_ALLOWED, str(error), call.to) from None
    caller_id = default_sender(settings)  # 500 misconfigured without one: nothing counted
    report_to = status_callback_url(request_url, settings, caller.owner)  # before counting
    placed = {"sid": call.sid, "to": number, "status": call.status, "from": caller_id}
    # Written while make_call's limits are counted (neither raises): Twilio waits on the
    # slower, not on both in turn. A call the limits refuse stays on the thread, failed.
    recorded = asyncio.gather(remember_sent(settings, caller, "call", placed),
                              note_sent(settings, caller.owner, caller_id, number, now))
    try:
        await admit(settings, "call", caller.owner, number)
    except Problem as problem:
        await recorded
        await _not_placed(settings, caller.owner, call.sid, now)
        spoken = TOO_MANY if problem.status == 429 else UNAVAILABLE
        raise CallRefused(spoken, problem.type.rsplit(":", 1)[-1], number) from None
    except BaseException:
        recorded.cancel()
        raise
    await recorded
    return dial_document(number=number, caller_id=caller_id, report_to=report_to)


async def _not_placed(settings: Settings, owner: str, sid: str, now: datetime) -> None:
    """The call the limits refused: ``failed``, on its thread and in ``status/{sid}``, as
    a status callback would say it (a store failure is logged)."""
    try:
        await record_report(settings, StatusReport(sid, "call", "failed", now), digest(owner))
    except Problem as problem:
        logger.error("call=%s problem=%s: a call the limits refused shows as placed", sid,
                     problem.type.rsplit(":", 1)[-1])
