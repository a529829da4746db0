"""Fields every outgoing request shares: who is contacted, and from which number.

Both numbers leave here in their canonical E.164 form (``shared.phone``): the
Twilio request, the limits, the opt-out check, the conversation and the
answer all use that one spelling.
"""

from __future__ import annotations

import re

from shared.phone import DestinationPolicy, DestinationRefused, NumberError, canonical
from shared.problems import destination_refused, invalid_field, misconfigured, sender_refused
from shared.request_body import Payload
from shared.settings import Settings

#: Room for a number written with spaces, dashes and brackets ("+1 (415) 555-2671"), so
#: that it is told what E.164 is rather than how long it may be.
NUMBER_LENGTH = 64
#: Digits (and spaces) without their +: a form body that sent + unencoded, which reads
#: as a space and is trimmed away.
_LOST_PLUS = re.compile(r"[0-9][0-9 ]*")
LOST_PLUS = ("must be in E.164 form and start with +, like +14155552671: in a form-encoded "
             "body write + as %2B (a bare + arrives as a space)")


def destination(payload: Payload, settings: Settings) -> str:
    """The ``to`` number, canonical, once it is valid and the destination policy allows it."""
    number = payload.text("to", required=True, max_length=NUMBER_LENGTH)
    assert number is not None
    try:
        return destination_policy(settings).check(number)
    except NumberError as error:
        raise invalid_field("to", _why(number, error)) from None
    except DestinationRefused as error:
        raise destination_refused("to", str(error)) from None


def destination_policy(settings: Settings) -> DestinationPolicy:
    """The policy every call and message obeys, whichever function places it."""
    return DestinationPolicy(settings.allowed_countries, settings.allow_premium_numbers)


def sender(payload: Payload, settings: Settings, *, default: str | None) -> str | None:
    """The client's ``from``, canonical, if given: E.164 (400), and a number this app may
    send from (403).

    Those are ``ALLOWED_FROM_NUMBERS`` and ``default``, the number the request
    would go out from anyway (None when a Messaging Service sends it). Any
    other would let a key holder pick any number of the account, bypass the
    Messaging Service, and enumerate the account's numbers from Twilio's answers.
    """
    given = payload.text("from", max_length=NUMBER_LENGTH)
    if given is None:
        return None
    try:
        number = canonical(given)
    except NumberError as error:
        raise invalid_field("from", _why(given, error)) from None
    if number != default and number not in (settings.allowed_from_numbers or ()):
        raise sender_refused("from", "not a number this app may send from "
                             "(ALLOWED_FROM_NUMBERS)")
    return number


def default_sender(settings: Settings) -> str:
    if settings.from_number is None:
        raise misconfigured("TWILIO_FROM_NUMBER", "is required when a request gives no 'from'")
    return settings.from_number


def _why(number: str, error: NumberError) -> str:
    """The error, or what most likely happened to a number that lost its +."""
    return LOST_PLUS if _LOST_PLUS.fullmatch(number) else str(error)
