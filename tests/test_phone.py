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


def test_country_allow_list():
    policy = DestinationPolicy(allowed_countries=frozenset({"CA"}))
    assert policy.check("+16135550123") == "+16135550123"
    with pytest.raises(DestinationRefused, match="US"):
        policy.check("+14155552671")
    with pytest.raises(DestinationRefused, match="non-geographic"):
        policy.check("+80012345678")


def test_mask_keeps_only_the_ends():
    assert mask("+14155552671") == "+1415•••2671"
    assert "5555" not in mask("+14155552671")
    assert mask("+1234") == "+1•••"
