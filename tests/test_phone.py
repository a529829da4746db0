"""The destination policy and number masking."""

from __future__ import annotations

import pytest

from shared.logs import mask
from shared.phone import DestinationPolicy, DestinationRefused, NumberError, is_e164


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


@pytest.mark.parametrize("number", ["+376312345", "+4930123456", "+6421234", "+1234"])
def test_mask_hides_at_least_half_the_digits_of_short_numbers(number):
    masked = mask(number)
    shown = sum(char.isdigit() for char in masked)
    assert shown <= (len(number) - 1) / 2 + 1 and "•••" in masked


def test_mask_keeps_the_ends_of_long_numbers():
    assert mask("+14155552671") == "+1415•••2671"
    assert mask("+442079460958") == "+4420•••0958"
