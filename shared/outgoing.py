"""Fields every outgoing request shares: who is contacted, and from which number."""

from __future__ import annotations

from shared.phone import DestinationPolicy, DestinationRefused, NumberError, parse_e164
from shared.problems import destination_refused, invalid_field, misconfigured, sender_refused
from shared.request_body import Payload
from shared.settings import Settings

NUMBER_LENGTH = 16


def destination(payload: Payload, settings: Settings) -> str:
    """The ``to`` number, once it is valid and the destination policy allows it."""
    number = payload.text("to", required=True, max_length=NUMBER_LENGTH)
    assert number is not None
    try:
        return destination_policy(settings).check(number)
    except NumberError as error:
        raise invalid_field("to", str(error)) from None
    except DestinationRefused as error:
        raise destination_refused("to", str(error)) from None


def destination_policy(settings: Settings) -> DestinationPolicy:
    """The policy every call and message obeys, whichever function places it."""
    return DestinationPolicy(settings.allowed_countries, settings.allow_premium_numbers)


def sender(payload: Payload, settings: Settings, *, default: str | None) -> str | None:
    """The client's ``from``, if given: E.164 (400), and a number this app may send from (403).

    Those are ``ALLOWED_FROM_NUMBERS`` and ``default``, the number the request
    would go out from anyway (None when a Messaging Service sends it). Any
    other would let a key holder pick any number of the account, bypass the
    Messaging Service, and enumerate the account's numbers from Twilio's answers.
    """
    number = payload.text("from", max_length=NUMBER_LENGTH)
    if number is None:
        return None
    try:
        parse_e164(number)
    except NumberError as error:
        raise invalid_field("from", str(error)) from None
    if number != default and number not in (settings.allowed_from_numbers or ()):
        raise sender_refused("from", "not a number this app may send from "
                             "(ALLOWED_FROM_NUMBERS)")
    return number


def default_sender(settings: Settings) -> str:
    if settings.from_number is None:
        raise misconfigured("TWILIO_FROM_NUMBER", "is required when a request gives no 'from'")
    return settings.from_number
