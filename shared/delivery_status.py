"""Delivery status: what Twilio's status callbacks say, and how a status may move.

Twilio reports each step of a message or call to its ``StatusCallback`` URL,
but the network may reorder, repeat or delay those reports, and several
instances of the app receive them at once. So a report is applied only if it
moves the status forward (by the order of the statuses, and for calls by
``SequenceNumber`` too), terminal statuses stay terminal, and a report already
seen (same ``I-Twilio-Idempotency-Token``, or same status and sequence number)
is recorded once. Every new report still goes into the history.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Literal

from shared.problems import TWILIO_ERROR_DOCS, invalid_field, webhook_refused

Kind = Literal["sms", "call"]

# The order statuses move in; a report applies only if it ranks higher.
MESSAGE_ORDER: dict[str, int] = {
    "accepted": 0, "scheduled": 0, "queued": 1, "sending": 2, "sent": 3,
    "partially_delivered": 4, "delivered": 5, "undelivered": 5, "failed": 5, "canceled": 5,
    "read": 6,
}
CALL_ORDER: dict[str, int] = {
    "queued": 0, "initiated": 1, "ringing": 2, "in-progress": 3,
    "completed": 4, "busy": 4, "no-answer": 4, "failed": 4, "canceled": 4,
}
# Final: nothing moves them, except that a delivered message may still be read.
TERMINAL = frozenset({"undelivered", "failed", "canceled", "read", "completed", "busy",
                      "no-answer"})
#: Reports kept per SID: far above the 4-6 a message or call really gets.
MAX_HISTORY = 32
#: Idempotency tokens remembered per SID, the most recent ones.
MAX_TOKENS = 64

_SID = re.compile(r"(SM|MM|CA)[0-9a-f]{32}")
_STATUS = re.compile(r"[a-z][a-z_-]{0,31}")
_TOKEN = re.compile(r"[\x21-\x7e]{1,256}")
_DIGITS = re.compile(r"[0-9]{1,9}")


def is_sid(text: str | None) -> bool:
    """A message (``SM``/``MM``) or call (``CA``) SID, as Twilio writes them."""
    return text is not None and _SID.fullmatch(text) is not None


@dataclass(frozen=True)
class StatusReport:
    """One status callback, as far as the store cares."""

    sid: str
    kind: Kind
    status: str
    at: datetime
    sequence: int | None = None
    error_code: int | None = None
    duration: int | None = None
    token: str | None = None
    #: A leg the app's <Dial> placed, filed under the call that dialed it: its status
    #: tells the call's story, its duration and error are the leg's own.
    leg: bool = False


def read_report(params: Mapping[str, str], headers: Mapping[str, str],
                received: datetime) -> StatusReport:
    """The report in a status callback's parameters, as ``read_webhook`` checked them.

    400 if it is not one. Twilio always names the account in a status callback
    (``read_webhook`` checks that it is this app's), so a report without one is
    refused as no webhook of Twilio's.
    """
    if "AccountSid" not in params:
        raise webhook_refused("a status callback names its Twilio account",
                              field="AccountSid", cause="no AccountSid")
    call_sid = params.get("CallSid")
    parent = params.get("ParentCallSid")
    # A leg the app's <Dial> placed reports (``dial_document``'s report_to) as the call
    # that dialed it: the app tracks the call, not its legs. The leg counts its own
    # SequenceNumber, which says nothing of the call's order.
    leg = is_sid(call_sid) and is_sid(parent) and str(parent).startswith("CA")
    sid = parent if leg else call_sid or params.get("MessageSid") or params.get("SmsSid")
    if not is_sid(sid):
        raise invalid_field("MessageSid" if call_sid is None else "CallSid",
                            "must be a Twilio message or call SID")
    assert sid is not None
    kind: Kind = "call" if call_sid else "sms"
    name = "CallStatus" if kind == "call" else "MessageStatus"
    status = params.get(name) or params.get("SmsStatus") or ""
    if not _STATUS.fullmatch(status):
        raise invalid_field(name, "must be a Twilio status")
    token = headers.get("I-Twilio-Idempotency-Token")
    return StatusReport(
        sid, kind, status, _event_time(params.get("Timestamp"), received),
        sequence=None if leg else _number(params, "SequenceNumber"),
        error_code=_number(params, "ErrorCode"),
        duration=_number(params, "CallDuration"),
        token=token if token and _TOKEN.fullmatch(token) else None,
        leg=leg,
    )


def _number(params: Mapping[str, str], name: str) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    if not _DIGITS.fullmatch(value):
        raise invalid_field(name, "must be a number")
    return int(value)


def _event_time(value: str | None, received: datetime) -> datetime:
    """When the event happened: a call's ``Timestamp`` (RFC 2822, whole seconds), else
    when its report arrived.

    The event lies within the second ``Timestamp`` names and before its report
    arrived, so the later of the two bounds that is still inside the second is kept.
    A time that cannot be read, or not held in UTC (``Fri, 31 Dec 9999 23:59:59
    -0100`` is in the year 10000 there), is no time: the arrival stands for it.
    """
    if not value:
        return received
    try:
        moment = parsedate_to_datetime(value)
        moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
        return min(received, moment + timedelta(milliseconds=999))
    except (TypeError, ValueError, OverflowError):
        return received


@dataclass(frozen=True)
class Event:
    """One entry of a delivery's history."""

    status: str
    at: datetime
    sequence: int | None = None


@dataclass
class Delivery:
    """What the app knows about one message or call it created."""

    sid: str
    kind: Kind
    owner: str
    to: str
    status: str
    created: datetime
    updated: datetime
    history: list[Event] = field(default_factory=list)
    sequence: int | None = None
    error_code: int | None = None
    duration: int | None = None
    tokens: list[str] = field(default_factory=list)

    @classmethod
    def created_now(cls, sid: str, kind: Kind, owner: str, to: str, status: str,
                    at: datetime) -> Delivery:
        """A delivery as Twilio answered its creation: one history entry, its first status."""
        return cls(sid, kind, owner, to, status, at, at, [Event(status, at)])

    def apply(self, report: StatusReport, received: datetime) -> bool:
        """Take a report into the history, and into the status if it moves it forward.

        False when the report was seen before (nothing changes).
        """
        if report.token is not None and report.token in self.tokens:
            return False
        told = [e for e in self.history if e.status == report.status]
        if report.leg and told:
            return False  # the call's own report, or another leg's, told it already
        # The call's own report of a status a leg told first (without a sequence): it
        # still brings the call's duration and error, but is no second event.
        completes = None
        if report.sequence is not None and not report.leg:
            completes = next((e for e in told if e.sequence is None), None)
        if completes is None and any(e.sequence == report.sequence or None in (
                e.sequence, report.sequence) for e in told):
            return False  # a status without a sequence (a message's) is told once
        if report.token is not None:
            self.tokens = [*self.tokens, report.token][-MAX_TOKENS:]
        if completes is not None:
            self.history.remove(completes)
            self._insert(Event(completes.status, completes.at, report.sequence))
        elif len(self.history) < MAX_HISTORY:
            self._insert(Event(report.status, report.at, report.sequence))
        if not report.leg and report.duration is not None:
            self.duration = report.duration
        if completes is not None and self.status == report.status:
            self.sequence = max(report.sequence, self.sequence or 0)
            self.error_code = report.error_code or self.error_code
        elif self._advances(report):
            self.status = report.status
            self.sequence = report.sequence if report.sequence is not None else self.sequence
            if report.error_code is not None and not report.leg:
                self.error_code = report.error_code
        self.updated = received
        return True

    def _advances(self, report: StatusReport) -> bool:
        order = CALL_ORDER if self.kind == "call" else MESSAGE_ORDER
        if self.status in TERMINAL or report.status not in order:
            return False
        if self.status == "delivered":
            return report.status == "read"
        if (report.sequence is not None and self.sequence is not None
                and report.sequence <= self.sequence):
            return False
        return order[report.status] > order.get(self.status, -1)

    def _insert(self, event: Event) -> None:
        """Keep call events in sequence order; other events in the order they arrived."""
        position = len(self.history)
        if event.sequence is not None:
            while (position > 0 and self.history[position - 1].sequence is not None
                   and self.history[position - 1].sequence > event.sequence):
                position -= 1
        self.history.insert(position, event)

    def view(self) -> dict[str, Any]:
        """The public shape ``status/`` answers (openapi.yaml's Delivery)."""
        return {
            "sid": self.sid,
            "kind": self.kind,
            "status": self.status,
            "to": self.to,
            "error_code": self.error_code,
            "more_info": TWILIO_ERROR_DOCS.format(code=self.error_code)
            if self.error_code else None,
            "duration": self.duration,
            "created": iso(self.created),
            "updated": iso(self.updated),
            "history": [{"status": e.status, "at": iso(e.at)} for e in self.history],
        }


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
