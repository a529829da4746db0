"""The destination policy and number masking."""

from __future__ import annotations

import phonenumbers
import pytest

from shared.logs import mask
from shared.phone import (
    DestinationPolicy,
    DestinationRefused,
    NumberError,
    is_e164,
    parse_e164,
)


@pytest.mark.parametrize("number", ["+14155552671", "+447911123456", "+33612345678"])
def test_valid_numbers_pass(number):
    assert DestinationPolicy().check(number) == number


@pytest.mark.parametrize(
    "number",
    ["14155552671", "+1415555267", "+1 415 555 2671", "+0123456789", "+", "", "+999999999",
     "+1415555267\uff11"],
)
def test_invalid_numbers_raise(number):
    with pytest.raises(NumberError):
        DestinationPolicy().check(number)
    assert not is_e164(number)


@pytest.mark.parametrize(
    "number",
    ["+19005551234", "+448712345678", "+33899123456", "+979123456789", "+80812345678",
     "+33810123456"],
)
def test_premium_rate_refused_unless_allowed(number):
    with pytest.raises(DestinationRefused):
        DestinationPolicy().check(number)
    assert DestinationPolicy(allow_premium=True).check(number) == number


@pytest.mark.parametrize(
    "number",
    ["+870772001799", "+881631234567", "+883510012345", "+80012345678", "+447012345678"],
    ids=["inmarsat", "iridium", "international-networks", "uifn", "uk-personal"],
)
def test_toll_fraud_destinations_refused_unless_allowed(number):
    with pytest.raises(DestinationRefused):
        DestinationPolicy().check(number)
    assert DestinationPolicy(allow_premium=True).check(number) == number


def test_north_american_personal_numbers_are_ordinary():
    assert DestinationPolicy().check("+15005550006") == "+15005550006"


def test_country_allow_list():
    policy = DestinationPolicy(allowed_countries=frozenset({"CA"}))
    assert policy.check("+16135550123") == "+16135550123"
    with pytest.raises(DestinationRefused, match="US"):
        policy.check("+14155552671")
    with pytest.raises(DestinationRefused, match="non-geographic"):
        policy.check("+80012345678")


@pytest.mark.parametrize(
    ("number", "masked"),
    [("+14155552671", "+1•••••••2671"), ("+442079460958", "+44•••••••0958"),
     ("+33612345678", "+33•••••••5678"), ("+8613912345678", "+86•••••••5678"),
     ("+376312345", "+376•••••••345"), ("+6421234", "+64•••••••34"),
     ("+4930123456", "+49•••••••3456")],
)
def test_mask_keeps_at_most_the_country_code_and_the_last_four_digits(number, masked):
    assert mask(number) == masked


@pytest.mark.parametrize("number", ["+14155552671", "+376312345", "+6421234", "+1234",
                                    "+442079460958", "+8613912345678", "+80012345678"])
def test_mask_never_shows_more_than_half_of_the_national_number(number):
    masked = mask(number)
    country_code = str(phonenumbers.parse(number, None).country_code)
    assert masked.startswith(f"+{country_code}•••••••")
    national = number[1 + len(country_code):]
    shown = masked.removeprefix(f"+{country_code}•••••••")
    assert national.endswith(shown) and len(shown) <= min(4, len(national) // 2)


@pytest.mark.parametrize("number", ["client:alice", "+999123456789", "", "sip:bob@example.com"])
def test_what_is_not_a_number_is_masked_whole(number):
    assert mask(number) == "•••••••"


@pytest.mark.parametrize("number", ["+1", "+12", "+123456", "+1234567890123456"])
def test_the_e164_shape_is_the_contracts_7_to_15_digits(number):
    with pytest.raises(NumberError, match=r"E\.164 form"):
        parse_e164(number)
