"""Twilio's test-credential magic numbers, as data; and the sandbox's two modes.

Twilio answers requests made with test credentials according to a fixed table of
``+1500555xxxx`` numbers (https://www.twilio.com/docs/iam/test-credentials); with
live credentials the table means nothing and any valid number may be used. The
sandbox's credentials act in one of two modes:

- ``test`` (the default): the table decides every message and call, as with test
  credentials, so code written against the sandbox behaves the same against them
  and every error path of the app can be reached on purpose. Unlike Twilio's test
  credentials (no status callbacks; 403 for any resource but creating messages,
  calls and numbers), the sandbox still reports statuses and answers fetches and
  lists: ``make run`` needs them for delivery status.
- ``live-like``: as live credentials, any valid phone number succeeds as ``From``
  and ``To`` (phonenumbers' validity), and an invalid one is refused with the code
  Twilio gives an invalid number.

The sandbox's own outcomes (``DELIVERY_OUTCOMES``) and opt-out list apply in both.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import phonenumbers

from .errors import TwilioApiError

Resource = Literal["message", "call"]
Param = Literal["From", "To"]
Mode = Literal["test", "live-like"]
MODES: tuple[Mode, ...] = ("test", "live-like")
#: How a mode decides a request's numbers: raises the TwilioApiError Twilio would.
Check = Callable[[Resource, str | None, str, str | None], None]

#: The one sender that succeeds, for both messages and calls: "The only number that can
#: be used to queue successful calls with your Test Credentials is +15005550006"
#: (https://www.twilio.com/docs/api/errors/21210); for messages, "using the magic number
#: +15005550006 as the From number"
#: (https://www.twilio.com/docs/messaging/tutorials/automate-testing).
VALID_FROM = "+15005550006"
#: The numbers on the sandbox's account (besides the number it is configured with,
#: ``SandboxState.default_number``): what a ``<Dial callerId>`` may name beyond the
#: calling and the called number (https://www.twilio.com/docs/api/errors/13214).
ACCOUNT_NUMBERS = frozenset({VALID_FROM})
#: Twilio's refusal of a message to a recipient who texted STOP to its sender
#: (https://www.twilio.com/docs/api/errors/21610; the table's +15005550004 row).
UNSUBSCRIBED = 21610


@dataclass(frozen=True)
class MagicNumber:
    """One row of the table.

    ``number`` None means "any number without its own row"; ``code`` None means the
    request passes. ``message`` may use ``{number}`` (the value of ``param``) and
    ``{sender}`` (the request's From, or its MessagingServiceSid).
    """

    resource: Resource
    param: Param
    number: str | None
    code: int | None
    message: str
    meaning: str


_NOT_A_NUMBER = (
    "The 'From' number {number} is not a valid phone number, shortcode, or alphanumeric sender ID."
)
_NOT_SMS_CAPABLE = (
    "The From phone number {number} is not a valid, SMS-capable inbound phone number "
    "or short code for your account."
)

#: The table of https://www.twilio.com/docs/iam/test-credentials: its section
#: #test-sms-messages for the message rows, #test-calls for the call rows. The codes are
#: Twilio's; their exact message texts are not documented by Twilio, chosen to say what
#: each code's page says (https://www.twilio.com/docs/api/errors/<code>).
MAGIC_NUMBERS: tuple[MagicNumber, ...] = (
    # Messages: From
    MagicNumber("message", "From", VALID_FROM, None, "", "Valid sender: the message is queued."),
    MagicNumber("message", "From", "+15005550001", 21212, _NOT_A_NUMBER,
                "Invalid 'From': not a phone number, short code or alphanumeric sender ID."),
    MagicNumber("message", "From", "+15005550007", 21606, _NOT_SMS_CAPABLE,
                "'From' is not owned by the account (or cannot send SMS)."),
    MagicNumber("message", "From", "+15005550008", 21611,
                "This 'From' number has exceeded the maximum number of queued messages.",
                "The sender's outgoing message queue is full."),
    MagicNumber("message", "From", None, 21606, _NOT_SMS_CAPABLE,
                "Any other sender is not a number of the account."),
    # Messages: To
    MagicNumber("message", "To", "+15005550001", 21211,
                "The 'To' number {number} is not a valid phone number.",
                "Invalid 'To' phone number."),
    MagicNumber("message", "To", "+15005550002", 21612,
                "The 'To' phone number: {number}, is not currently reachable using the "
                "'From' phone number: {sender} via SMS.",
                "Twilio cannot route a message to this number."),
    MagicNumber("message", "To", "+15005550003", 21408,
                "Permission to send an SMS has not been enabled for the region indicated "
                "by the 'To' number: {number}.",
                "The account lacks the international (geo) permission for this number."),
    MagicNumber("message", "To", "+15005550004", UNSUBSCRIBED,
                "Attempt to send to unsubscribed recipient",
                "The recipient replied STOP (blocked / unsubscribed)."),
    MagicNumber("message", "To", "+15005550009", 21614,
                "'To' number {number} is not a valid mobile number",
                "The number is not a mobile number and cannot receive SMS."),
    # Calls: From
    MagicNumber("call", "From", VALID_FROM, None, "", "Valid caller ID: the call is queued."),
    MagicNumber("call", "From", "+15005550001", 21212, _NOT_A_NUMBER,
                "Invalid 'From' (caller ID) phone number."),
    MagicNumber("call", "From", None, 21210,
                "The source phone number provided, {number}, is not yet verified for your "
                "account. You may only make calls from phone numbers that you've verified "
                "or purchased from Twilio.",
                "Any other caller ID is neither owned nor verified by the account."),
    # Calls: To
    MagicNumber("call", "To", "+15005550001", 21217,
                "The phone number you are attempting to call, {number}, is not valid.",
                "Invalid 'To' phone number."),
    MagicNumber("call", "To", "+15005550002", 21214,
                "'To' phone number cannot be reached",
                "The number cannot be reached."),
    MagicNumber("call", "To", "+15005550003", 21215,
                "Account not authorized to call {number}. Perhaps you need to enable some "
                "international permissions: "
                "https://www.twilio.com/console/voice/calls/geo-permissions/low-risk",
                "The account lacks the international (geo) permission for this number."),
    MagicNumber("call", "To", "+15005550004", 21216,
                "Account not allowed to call {number}",
                "The number is on Twilio's block list."),
)  # fmt: skip


def lookup(resource: Resource, param: Param, number: str) -> MagicNumber | None:
    """The row that decides ``number``: its own row, else the "any other" row, else None."""
    fallback = None
    for row in MAGIC_NUMBERS:
        if row.resource != resource or row.param != param:
            continue
        if row.number == number:
            return row
        if row.number is None:
            fallback = row
    return fallback


def check(resource: Resource, sender: str | None, to: str, via: str | None = None) -> None:
    """Raise the error Twilio's table gives for this From/To pair (From first, like Twilio).

    ``sender`` None (a message sent through a Messaging Service, named by ``via``) skips
    the From rows.
    """
    pairs: tuple[tuple[Param, str | None], ...] = (("From", sender), ("To", to))
    for param, number in pairs:
        if number is None:
            continue
        row = lookup(resource, param, number)
        if row is not None and row.code is not None:
            text = row.message.format(number=number, sender=sender or via or "")
            raise TwilioApiError(400, row.code, text)


#: What Twilio answers an invalid number with, when live credentials send or call: the
#: same codes as the table's invalid-number rows (https://www.twilio.com/docs/api/errors/21212,
#: .../21211, and .../21217: "Phone number does not appear to be valid"). Validity is
#: phonenumbers': what Twilio deems valid is not documented by Twilio, chosen because
#: libphonenumber's metadata is the public record of numbering plans.
_INVALID: dict[tuple[Resource, Param], tuple[int, str]] = {
    ("message", "From"): (21212, _NOT_A_NUMBER),
    ("message", "To"): (21211, "The 'To' number {number} is not a valid phone number."),
    ("call", "From"): (21212, _NOT_A_NUMBER),
    ("call", "To"): (21217, "The phone number you are attempting to call, {number}, is not "
                            "valid."),
}
#: Addresses a call may go to that are not phone numbers (Twilio Client, SIP): "The
#: phone number, SIP address or Client identifier" (``to`` of
#: https://www.twilio.com/docs/voice/api/call-resource).
_NOT_PHONE = ("client:", "sip:")


def _valid(number: str) -> bool:
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(number, None))
    except phonenumbers.NumberParseException:
        return False


def check_live(resource: Resource, sender: str | None, to: str, via: str | None = None) -> None:
    """Live credentials: any valid number passes; an invalid one is refused (From first)."""
    pairs: tuple[tuple[Param, str | None], ...] = (("From", sender), ("To", to))
    for param, number in pairs:
        if number is None or (resource == "call" and number.startswith(_NOT_PHONE)):
            continue
        if not _valid(number):
            code, message = _INVALID[resource, param]
            raise TwilioApiError(400, code, message.format(number=number))


def checker(mode: Mode) -> Check:
    """How ``mode`` decides numbers: the magic table (``test``) or validity (``live-like``)."""
    return check if mode == "test" else check_live


@dataclass(frozen=True)
class DeliveryOutcome:
    """How a message or call the sandbox accepted ends, for one ``To`` number.

    Twilio's test credentials send no status callbacks, so these numbers are the
    sandbox's own (+1 500 555 30xx for messages: the last digits recall the error
    code; +1 500 555 20xx for calls). Every other number ends ``delivered`` or
    ``completed``. The numbers are not documented by Twilio (the sandbox's choice); the
    statuses and codes are Twilio's (https://www.twilio.com/docs/api/errors/30003,
    .../30005, .../30006, .../30007, .../30034; call statuses: "Call Status values" of
    https://www.twilio.com/docs/voice/api/call-resource).
    """

    resource: Resource
    number: str
    status: str
    code: int | None
    meaning: str


DELIVERY_OUTCOMES: tuple[DeliveryOutcome, ...] = (
    DeliveryOutcome("message", "+15005553003", "undelivered", 30003,
                    "Unreachable destination handset: the phone is off or out of coverage."),
    DeliveryOutcome("message", "+15005553005", "undelivered", 30005,
                    "Unknown destination handset: the number does not exist (any more)."),
    DeliveryOutcome("message", "+15005553006", "undelivered", 30006,
                    "Landline or unreachable carrier: the number cannot receive SMS."),
    DeliveryOutcome("message", "+15005553007", "undelivered", 30007,
                    "Message filtered by the carrier (spam or content rules)."),
    DeliveryOutcome("message", "+15005553034", "failed", 30034,
                    "Failed before leaving Twilio: the sender is not registered for US A2P "
                    "10DLC."),
    DeliveryOutcome("call", "+15005552001", "busy", None, "The callee's line is busy."),
    DeliveryOutcome("call", "+15005552002", "no-answer", None,
                    "The phone rings until Twilio gives up."),
    DeliveryOutcome("call", "+15005552003", "failed", None,
                    "The call cannot be connected (carrier failure)."),
)  # fmt: skip


def delivery_outcome(resource: Resource, to: str) -> DeliveryOutcome | None:
    """The failing end of a message or call to ``to``; None when it succeeds."""
    return next((row for row in DELIVERY_OUTCOMES
                 if row.resource == resource and row.number == to), None)


# --- Who picks up a call (the sandbox's own numbers, like the outcomes above) ---------

#: An answering machine picks up calls to this number.
MACHINE = "+15005552004"
#: The callee of this number lets it ring this long before picking up.
SLOW_PICKUP = "+15005552005"
PICKUP_SECONDS = 20
#: What Answering Machine Detection reports for a machine, by ``MachineDetection`` mode:
#: ``Enable`` as soon as it hears one, ``DetectMessageEnd`` once its greeting ends
#: (https://www.twilio.com/docs/voice/answering-machine-detection).
MACHINE_ANSWERS = {"Enable": "machine_start", "DetectMessageEnd": "machine_end_beep"}
CALL_ANSWERS: tuple[tuple[str, str], ...] = (
    (MACHINE, "An answering machine picks up: AnsweredBy machine_start (machine_end_beep "
              "with DetectMessageEnd) when the call asked for MachineDetection."),
    (SLOW_PICKUP, f"Picks up after {PICKUP_SECONDS} s of ringing: a call with a shorter "
                  "Timeout ends no-answer."),
)


def answered_by(to: str, mode: str | None) -> str | None:
    """``AnsweredBy`` for a call to ``to`` asking for ``MachineDetection`` ``mode``: None
    without detection, ``human`` for everyone but ``MACHINE``."""
    if mode is None:
        return None
    return MACHINE_ANSWERS[mode] if to == MACHINE else "human"


def rings_out(to: str, timeout: int) -> bool:
    """Whether a call to ``to`` gives up ringing (no-answer) before its callee picks up.

    Twilio lets the phone ring ``Timeout`` seconds (default 60) before it assumes no
    answer (OpenAPI, ``Timeout`` of ``/2010-04-01/Accounts/{AccountSid}/Calls.json``).
    The sandbox does not wait: it compares.
    """
    return to == SLOW_PICKUP and timeout < PICKUP_SECONDS
