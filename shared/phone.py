"""Phone numbers: E.164 parsing, one spelling per number, and the destination policy.

The function URLs are public, so the policy is what stands between a leaked
function key and a bill for calls to premium-rate numbers: every destination
must be a valid E.164 number, in an allowed country, and of a type that does
not cost the caller's account extra.

One number has several E.164 spellings: ``+114155550160`` (NANP's national
prefix ``1`` kept) is ``+14155550160``, ``+4402079460958`` is
``+442079460958``. Every number the app takes is parsed once and used after
that in its canonical form (``canonical``), so rate limits, opt-outs and
conversations never count one subscriber as two. What ``phonenumbers`` keeps
apart stays apart: Italy's leading zero is part of the number
(``+390612345678`` is not ``+39612345678``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType

# 7 to 15 digits, as openapi.yaml's E164; ASCII digits only: \d matches any script.
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
E164_FORM = ("must be a phone number in E.164 form: +, the country code and the number, "
             "digits only (no spaces, dashes or brackets), like +14155552671")

# Types libphonenumber classifies whose cost falls on the caller beyond a
# normal call or SMS, the usual targets of toll fraud and SMS pumping.
REFUSED_TYPES: dict[int, str] = {
    PhoneNumberType.PREMIUM_RATE: "premium-rate",
    PhoneNumberType.SHARED_COST: "shared-cost",
    PhoneNumberType.PERSONAL_NUMBER: "personal (follow-me)",
}
# Personal numbers in the North American plan (the 5XX codes, Twilio's test
# numbers among them) are billed as ordinary US numbers; elsewhere (UK 070)
# they are a known toll-fraud destination.
_ORDINARY_PERSONAL_CODES = frozenset({1})
_NON_GEOGRAPHIC = "001"  # satellite, international networks, global services


class NumberError(ValueError):
    """A number that is not a valid E.164 phone number (the client's mistake: 400)."""


class DestinationRefused(Exception):
    """A valid number the policy refuses to call or text (403)."""


@dataclass(frozen=True)
class DestinationPolicy:
    """Which destinations the app may call or text."""

    allowed_countries: frozenset[str] | None = None
    allow_premium: bool = False

    def check(self, number: str) -> str:
        """``number`` in its canonical form if it is a valid, allowed destination; raise
        otherwise."""
        parsed = parse_e164(number)
        region = phonenumbers.region_code_for_number(parsed)
        if self.allowed_countries is not None and region not in self.allowed_countries:
            where = region if region and region != _NON_GEOGRAPHIC else "a non-geographic number"
            raise DestinationRefused(f"destination country {where} is not allowed")
        if self.allow_premium:
            return _formatted(parsed)
        if region == _NON_GEOGRAPHIC:
            raise DestinationRefused("non-geographic (satellite or global service) numbers "
                                     "are not allowed")
        number_type = phonenumbers.number_type(parsed)
        kind = REFUSED_TYPES.get(number_type)
        if number_type == PhoneNumberType.PERSONAL_NUMBER and (
                parsed.country_code in _ORDINARY_PERSONAL_CODES):
            kind = None
        if kind:
            raise DestinationRefused(f"{kind} numbers are not allowed")
        return _formatted(parsed)


def is_e164(text: str) -> bool:
    """True for a valid number written in E.164 form (``+`` and digits only)."""
    try:
        parse_e164(text)
    except NumberError:
        return False
    return True


def canonical(text: str) -> str:
    """The one spelling the app uses for ``text``, a valid number in E.164 form."""
    return _formatted(parse_e164(text))


def canonical_address(text: str) -> str:
    """What Twilio wrote in a webhook's From or To, one spelling per number.

    A valid number in E.164 form becomes its canonical form; anything else (a
    short code, a number ``phonenumbers`` does not know yet) stays as written:
    an incoming message is never refused for it, and an invalid number is
    never the canonical form of a valid one, so it cannot meet one.
    """
    try:
        return canonical(text)
    except NumberError:
        return text


def parse_e164(text: str) -> phonenumbers.PhoneNumber:
    """Parse a number that must already be in E.164 form and be a valid number."""
    if not _E164.fullmatch(text):
        raise NumberError(E164_FORM)
    try:
        parsed = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        raise NumberError("is not a valid phone number") from None
    if not phonenumbers.is_valid_number(parsed):
        raise NumberError("is not a valid phone number")
    return parsed


def _formatted(parsed: phonenumbers.PhoneNumber) -> str:
    return phonenumbers.format_number(parsed, PhoneNumberFormat.E164)
