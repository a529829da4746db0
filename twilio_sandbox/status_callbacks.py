"""Status callbacks: what Twilio reports to a message's or call's ``StatusCallback``.

Like Twilio: no callback for the initial status (``queued``/``accepted``);
messages report ``sent`` then ``delivered`` (or ``undelivered``/``failed`` with
the error code, see ``magic.DELIVERY_OUTCOMES``); calls report the events they
asked for with ``StatusCallbackEvent`` (only ``completed`` when none),
numbered by ``SequenceNumber`` and stamped with ``Timestamp``, the last one with
``CallDuration``. Each request is a signed form POST carrying
``I-Twilio-Idempotency-Token``, retried with the same token as the URL's
connection overrides say (``overrides``): by default once, and only when the
connection fails; an answer, 503 included, is final.

``CallbackFault`` makes the delivery misbehave the ways the network and
Twilio can: a report delivered twice, a resource's reports delivered in
reverse order, one delivered late (after the ones that follow it), or none
delivered at all.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

import aiohttp
import yarl

from .callbacks import first_value, pick_up, rings_out, signed_request
from .overrides import SEND_ERRORS, Attempt, NotSent, describe, split
from .resources import API_VERSION, Resource, now, num_segments, rfc2822
from .webhook_log import show_answer

log = logging.getLogger(__name__)

CallbackFaultKind = Literal["duplicate", "reorder", "late", "drop"]
CALLBACK_FAULT_KINDS: tuple[str, ...] = get_args(CallbackFaultKind)
#: A call's events, and the status each reports (``answered`` reports in-progress).
CALL_EVENTS = {"initiated": "initiated", "ringing": "ringing", "answered": "in-progress"}
SIP_CODES = {"completed": 200, "busy": 486, "no-answer": 487, "failed": 500, "canceled": 487}


@dataclass
class CallbackFault:
    """One way to misdeliver the status callbacks of the next matching resources.

    kind: ``duplicate`` (each report twice; with ``new_token`` the copy carries a
    token of its own, as a separately generated repeat would), ``reorder`` (all of
    a resource's reports held back, then delivered newest first), ``late`` (each
    report delivered ``delay`` seconds late, so the later ones overtake it), ``drop``
    (nothing delivered: the journal says what would have been).
    resource: ``message``, ``call`` or None for both. count: resources it hits, None for all.
    """

    kind: CallbackFaultKind
    resource: Literal["message", "call"] | None = None
    count: int | None = None
    delay: float = 0.5
    new_token: bool = False

    def __post_init__(self) -> None:
        if self.kind not in CALLBACK_FAULT_KINDS:
            raise ValueError(f"kind must be one of {', '.join(CALLBACK_FAULT_KINDS)}")
        if self.resource not in (None, "message", "call"):
            raise ValueError("resource must be message, call or null")
        if self.count is not None and (isinstance(self.count, bool) or self.count < 1):
            raise ValueError("count must be at least 1 (or null for all)")
        if isinstance(self.delay, bool) or not 0 <= self.delay <= 60:
            raise ValueError("delay must be 0 to 60 seconds")

    @classmethod
    def from_json(cls, data: object) -> CallbackFault:
        if not isinstance(data, Mapping):
            raise ValueError("a callback fault is a JSON object")
        unknown = set(data) - {f for f in cls.__dataclass_fields__}
        if unknown:
            raise ValueError(f"unknown callback fault fields: {', '.join(sorted(unknown))}")
        try:
            return cls(**dict(data))
        except TypeError as error:
            raise ValueError(str(error)) from None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Timing:
    """Seconds between a resource's steps (Twilio's are seconds; defaults keep tests fast)."""

    message_step: float = 0.1
    call_step: float = 0.1
    call_duration: float = 0.2


@dataclass
class Delivery:
    """Sends one resource's reports, applying the faults that picked it."""

    session: aiohttp.ClientSession
    url: str
    auth_token: str
    sid: str
    faults: list[CallbackFault]
    journal: Callable[[dict[str, Any]], None]
    spawn: Callable[[Awaitable[None]], None]
    held: list[tuple[dict[str, str], str]] = field(default_factory=list)
    #: The call's StatusCallbackMethod (GET carries the report in the query string).
    method: str = "POST"

    def _has(self, kind: str) -> CallbackFault | None:
        return next((fault for fault in self.faults if fault.kind == kind), None)

    async def report(self, params: dict[str, str]) -> None:
        token = secrets.token_hex(16)
        if self._has("drop"):
            self.journal({**self._entry(params, token, 0), "error": "dropped"})
            return
        if self._has("reorder"):
            self.held.append((params, token))
            return
        late = self._has("late")
        if late is not None:
            self.spawn(self._later(late.delay, params, token))
            return
        await self._send(params, token)

    async def finish(self) -> None:
        """Deliver what ``reorder`` held back, newest first."""
        held, self.held = self.held, []
        for params, token in reversed(held):
            await self._send(params, token)

    async def _later(self, delay: float, params: dict[str, str], token: str) -> None:
        await asyncio.sleep(delay)
        await self._send(params, token)

    async def _send(self, params: dict[str, str], token: str) -> None:
        await self._post(params, token)
        duplicate = self._has("duplicate")
        if duplicate is not None:
            await self._post(params, secrets.token_hex(16) if duplicate.new_token else token)

    def _entry(self, params: dict[str, str], token: str, attempt: int) -> dict[str, Any]:
        """What ``_sandbox/state`` shows of one request: sent what, answered what."""
        return {"sid": self.sid, "url": split(self.url)[0], "status": _status(params),
                "token": token,
                "attempt": attempt, "params": dict(params), "answered": None, "error": None,
                "at": time.time()}

    async def _post(self, params: dict[str, str], token: str) -> None:
        """POST the report, and again as the URL's overrides say (Twilio's default: once
        more if the connection failed). Whatever fails, the call or message goes on."""
        target, overrides = split(self.url)
        url, body, headers = signed_request(target, self.method, params, self.auth_token)
        headers["I-Twilio-Idempotency-Token"] = token

        async def attempt(current: Attempt) -> None:
            entry = self._entry(params, token, current.number)
            self.journal(entry)
            try:
                context: dict[str, Any] = {}  # the webhook log's record of this request
                async with self.session.request(self.method, yarl.URL(url, encoded=True), data=body,
                                             headers=headers, timeout=current.timeout,
                                             trace_request_ctx=context) as answer:
                    current.status = entry["answered"] = answer.status
                    await show_answer(answer, context)
            # A URL aiohttp cannot even request (a port beyond 65535: ValueError) fails
            # like an unreachable one.
            except SEND_ERRORS as error:
                entry["error"] = describe(error)
                raise
            finally:
                if not 200 <= (entry["answered"] or 0) < 300:
                    log.warning("status callback %s %s answered %s (attempt %d)", self.sid,
                                entry["status"], entry["answered"] or entry["error"],
                                current.number)

        try:
            await overrides.send(attempt)
        except NotSent as refused:  # Twilio's debugger logs it; nothing is sent
            self.journal({**self._entry(params, token, 0), "error": str(refused)})
            log.error("status callback %s %s not sent: %s", self.sid, _status(params), refused)
        except SEND_ERRORS as error:
            log.warning("status callback %s %s not delivered: %s", self.sid, _status(params),
                        describe(error))


def _status(params: Mapping[str, str]) -> str:
    return params.get("CallStatus") or params.get("MessageStatus") or ""


def callback_url(resource: Resource) -> str | None:
    """The resource's StatusCallback."""
    return first_value(resource["request"], "StatusCallback")


def callback_method(resource: Resource) -> str:
    """How a call's StatusCallback is asked: its StatusCallbackMethod, POST by default
    (OpenAPI, POST /2010-04-01/Accounts/{AccountSid}/Calls.json)."""
    return (first_value(resource["request"], "StatusCallbackMethod") or "POST").upper()


#: The statuses a carrier's delivery receipt decides, whose callbacks carry RawDlrDoneDate.
RECEIPT_STATUSES = frozenset({"delivered", "undelivered"})


def raw_dlr_done_date() -> str:
    """The carrier receipt's Done Date, ``YYMMDDhhmm`` without a zone (the sandbox's: GMT), as
    Twilio passes it through on delivered and undelivered callbacks
    (https://www.twilio.com/en-us/changelog/addition-of-rawdlrdonedate-to-delivered-and-undelivered-status-webhooks)."""
    return now().strftime("%y%m%d%H%M")


def message_report(message: Resource, status: str, code: int | None = None) -> dict[str, str]:
    """A message status callback's parameters, as Twilio sends them."""
    params = {
        "AccountSid": message["account_sid"], "ApiVersion": API_VERSION,
        "From": message["from"] or "", "To": message["to"],
        "MessageSid": message["sid"], "SmsSid": message["sid"],
        "SmsStatus": status, "MessageStatus": status,
    }
    if message["messaging_service_sid"]:
        params["MessagingServiceSid"] = message["messaging_service_sid"]
    if code is not None:
        params["ErrorCode"] = str(code)
    if status in RECEIPT_STATUSES:
        params["RawDlrDoneDate"] = raw_dlr_done_date()
    return params


def call_report(call: Resource, status: str, sequence: int,
                extra: dict[str, str] | None = None) -> dict[str, str]:
    """A call status callback's parameters, as Twilio sends them (a leg ``<Dial>`` placed
    names its parent: https://www.twilio.com/docs/voice/twiml/dial#dial-child-call-status)."""
    parent = {"ParentCallSid": call["parent_call_sid"]} if call.get("parent_call_sid") else {}
    return {
        "AccountSid": call["account_sid"], "ApiVersion": API_VERSION,
        "CallSid": call["sid"], "CallStatus": status, "Called": call["to"],
        "Caller": call["from"], "From": call["from"], "To": call["to"],
        "Direction": call.get("direction") or "outbound-api", **parent,
        "CallbackSource": "call-progress-events", "SequenceNumber": str(sequence),
        "Timestamp": rfc2822(now()),
        # Once answered, who answered, if the call asked for Answering Machine Detection.
        **({"AnsweredBy": call["answered_by"]} if call.get("answered_by") else {}),
        **(extra or {}),
    }


async def message_lifecycle(message: Resource, delivery: Delivery | None, timing: Timing,
                            failure: tuple[str, int | None] | None,
                            sender: str | None = None) -> None:
    """sent then delivered; or failed at once / undelivered after sent, with the code.

    A Messaging Service's message (``accepted``) is ``queued`` first, once the service
    has chosen its sender (``sender``) and so counted its segments: it was created
    with ``from`` null and ``num_segments`` 0
    (https://www.twilio.com/docs/messaging/api/message-resource, ``num_segments``), and
    that change is reported like the others: no callback for the initial status only
    (https://www.twilio.com/docs/messaging/guides/outbound-message-status-in-status-callbacks).
    ``date_sent`` is set when the message is sent. Reported when the message asked for
    it (``delivery``), as Twilio does. Stops as soon as someone else (the console)
    moved the message.
    """
    steps: list[tuple[str, int | None]] = [("sent", None), ("delivered", None)]
    if failure is not None:
        status, code = failure
        steps = [(status, code)] if status == "failed" else [("sent", None), (status, code)]
    if message["status"] == "accepted":
        steps.insert(0, ("queued", None))
    last = message["status"]  # what this lifecycle set last: anything else came from outside
    for status, code in steps:
        await asyncio.sleep(timing.message_step)
        if message["status"] != last:
            break
        stamp = rfc2822(now())
        changes: dict[str, Any] = {"status": status, "date_updated": stamp}
        if status == "queued":
            changes.update({"from": sender, "num_segments": str(num_segments(message["body"]))})
        if status == "sent":
            changes["date_sent"] = stamp
        if code is not None:
            changes["error_code"] = code
        message.update(changes)
        last = status
        if delivery is not None:
            await delivery.report(message_report(message, status, code))
    if delivery is not None:
        await delivery.finish()


async def call_lifecycle(call: Resource, delivery: Delivery | None, timing: Timing,
                         failure: str | None, answer: Callable[[], Awaitable[bool]],
                         sequence: Callable[[], int]) -> None:
    """initiated, ringing, then answered (TwiML played) and completed, or busy/no-answer/failed.

    ``answer`` plays the call's TwiML and tells whether it could; reports go only
    for the events the call asked for, ``completed`` alone when it asked for none
    (https://www.twilio.com/docs/voice/api/call-resource#statuscallbackevent): so
    a Voice SDK call, whose TwiML App has a StatusCallback but no events to ask
    for (https://www.twilio.com/docs/usage/api/applications), reports its end only.
    An incoming call (from a phone or the Voice SDK) is ringing when it arrives,
    so it neither is nor reports initiated. ``initiated`` is an event only: the Call
    resource stays ``queued`` until it rings (OpenAPI ``call_enum_status`` has no
    ``initiated``). A call whose callee picks up after its ``Timeout`` ends no-answer.
    """
    request = call["request"]
    wanted = set(request.get("StatusCallbackEvent") or [])  # one event a parameter
    if failure is None and rings_out(call):
        failure = "no-answer"

    async def report(status: str, event: str, extra: dict[str, str] | None = None) -> None:
        if delivery is None or event not in wanted | {"completed"}:
            return
        await delivery.report(call_report(call, status, sequence(), extra))

    arriving = () if call.get("direction") == "inbound" else ("initiated", "ringing")
    for event in arriving:
        if event == "ringing" and failure == "failed":
            break
        await asyncio.sleep(timing.call_step)  # Twilio dials a moment after it answers
        if event != "initiated":
            call.update(status=CALL_EVENTS[event], date_updated=rfc2822(now()))
        await report(CALL_EVENTS[event], event)
    await asyncio.sleep(timing.call_step)
    if failure is None:
        pick_up(call)  # answered: a call with TwiML to play plays it next
        await report("in-progress", "answered")
        started = time.monotonic()
        answered = await answer()  # sets in-progress, then completed or failed
        await asyncio.sleep(timing.call_duration)
        seconds = max(1, math.ceil(time.monotonic() - started)) if answered else 0
        final = call["status"] if call["status"] != "in-progress" else "completed"
        call.update(status=final, duration=str(seconds))
    else:
        final, seconds = failure, 0
        stamp = rfc2822(now())
        call.update(status=final, duration="0", end_time=stamp, date_updated=stamp)
    await report(final, "completed", {
        "CallDuration": str(seconds), "Duration": str(math.ceil(seconds / 60)),
        "SipResponseCode": str(SIP_CODES.get(final, 500)),
    })
    if delivery is not None:
        await delivery.finish()
