"""One spelling per number: every E.164 spelling of a number is that one number, end to end.

E.164 leaves room to write one number several ways: the national (trunk)
prefix kept after the country code (``+1 1 415...``, ``+44 0 20...``,
``+7 8 495...``, ``+36 06 1...``), Argentina's mobile ``15`` for its ``9``.
``phonenumbers`` reads each as the one number, and the app uses its canonical
form from the moment it reads it. What it keeps apart stays apart: Italy's
leading zero belongs to the number. The tables below say which spellings are
one number; the end-to-end tests run them through the functions (the real
``twilio`` library over loopback to the sandbox, the store on Azurite, Easy
Auth's users): the limits count them together, an opt-out in one spelling
stops a send in another, ``voice`` dials the canonical number.
"""

from __future__ import annotations

import secrets
import xml.etree.ElementTree as ET

import phonenumbers
import pytest
import unique
from harness import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, created, invoke, refused, request
from phonenumbers import PhoneMetadata, PhoneNumberFormat
from test_two_way_sms import (  # noqa: F401 - on_azure: the deployment these tests run in
    ORIGIN,
    inbound_params,
    on_azure,
    receive,
    replies,
    send,
    thread_of,
    user,
)
from twilio.request_validator import RequestValidator

from shared.client_identity import identity_for
from shared.identity import Caller
from shared.phone import DestinationPolicy, NumberError, canonical, canonical_address
from shared.settings import load_settings

pytestmark = pytest.mark.usefixtures("on_azure")

# --- which spellings are one number ----------------------------------------------------

#: (canonical, another spelling of it): one number to phonenumbers, and to the app.
SAME_NUMBER = [
    pytest.param("+14155550160", "+114155550160", id="US-national-prefix-1"),
    pytest.param("+16135550123", "+116135550123", id="CA-national-prefix-1"),
    pytest.param("+442079460958", "+4402079460958", id="GB-trunk-0"),
    pytest.param("+447400123456", "+4407400123456", id="GB-mobile-trunk-0"),
    pytest.param("+493012345678", "+4903012345678", id="DE-trunk-0"),
    pytest.param("+4915112345678", "+49015112345678", id="DE-mobile-trunk-0"),
    pytest.param("+33612345678", "+330612345678", id="FR-trunk-0"),
    pytest.param("+61412345678", "+610412345678", id="AU-trunk-0"),
    pytest.param("+81312345678", "+810312345678", id="JP-trunk-0"),
    pytest.param("+74951234567", "+784951234567", id="RU-trunk-8"),
    pytest.param("+3612345678", "+360612345678", id="HU-trunk-06"),
    pytest.param("+5491112345678", "+54111512345678", id="AR-mobile-15-for-9"),
    pytest.param("+5491112345678", "+540111512345678", id="AR-trunk-0-and-15"),
    pytest.param("+8613812345678", "+86013812345678", id="CN-trunk-0"),
    pytest.param("+919876543210", "+9109876543210", id="IN-trunk-0"),
    pytest.param("+5511987654321", "+55011987654321", id="BR-trunk-0"),
    pytest.param("+6421234567", "+64021234567", id="NZ-trunk-0"),
    pytest.param("+27821234567", "+270821234567", id="ZA-trunk-0"),
]
#: Two valid numbers that differ only by a zero: Italy's leading zero is significant.
KEPT_APART = [
    pytest.param("+3903123456789", "+393123456789", id="IT-fixed-0312-vs-mobile-312"),
    pytest.param("+390612345678", "+3906612345678", id="IT-Rome-06-vs-066"),
]
#: Spellings that are no number: refused, never read as a valid one.
NOT_A_NUMBER = [
    pytest.param("+39612345678", id="IT-Rome-without-its-leading-0"),
    pytest.param("+225123456789", id="CI-without-its-leading-0"),
    pytest.param("+340612345678", id="ES-has-no-trunk-prefix"),
    pytest.param("+47099999999", id="NO-has-no-trunk-prefix"),
    pytest.param("+1114155550160", id="US-prefix-twice"),
    pytest.param("+5215512345678", id="MX-retired-mobile-1"),
]


@pytest.mark.parametrize(("number", "spelling"), SAME_NUMBER)
def test_every_spelling_of_a_number_is_read_as_its_canonical_form(number, spelling):
    policy = DestinationPolicy()
    assert policy.check(spelling) == policy.check(number) == number
    assert canonical(spelling) == canonical_address(spelling) == number


@pytest.mark.parametrize(("one", "other"), KEPT_APART)
def test_numbers_that_differ_by_a_significant_zero_stay_apart(one, other):
    policy = DestinationPolicy()
    assert (policy.check(one), policy.check(other)) == (one, other)


@pytest.mark.parametrize("spelling", NOT_A_NUMBER)
def test_a_spelling_that_is_no_number_is_refused_and_never_merged(spelling):
    with pytest.raises(NumberError):
        DestinationPolicy().check(spelling)
    assert canonical_address(spelling) == spelling  # an inbound one stays as Twilio wrote it


def test_in_every_region_a_spelling_with_the_national_prefix_is_the_number_or_refused():
    """Each region's example numbers, their national prefix written after the country
    code: the app reads the example number, or refuses the spelling; never a second one."""
    merged = set()
    for region in phonenumbers.SUPPORTED_REGIONS:
        prefix = PhoneMetadata.metadata_for_region(region).national_prefix
        for kind in (phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.MOBILE):
            example = phonenumbers.example_number_for_type(region, kind)
            if not prefix or example is None:
                continue
            number = phonenumbers.format_number(example, PhoneNumberFormat.E164)
            code = str(example.country_code)
            spelling = f"+{code}{prefix}{number[1 + len(code):]}"
            try:
                read = DestinationPolicy(allow_premium=True).check(spelling)
            except NumberError:
                continue
            assert read == number, (region, spelling)
            merged.add(region)
    assert len(merged) >= 140  # NANP, GB, DE, FR, RU, ...: 144 with phonenumbers 9.0


# --- end to end -----------------------------------------------------------------------


def regional(n: int) -> dict[str, tuple[str, list[str]]]:
    """Per region, a number of this test's own (``n``: each test its own), canonical,
    and its other spellings. US numbers come from ``unique``; the others from ranges
    only this file writes."""
    us = unique.number()
    return {
        "US": (us, [f"+11{us[2:]}"]),
        "GB": (f"+44113496{n:04d}", [f"+440113496{n:04d}"]),  # Leeds: Ofcom's drama range
        "DE": (f"+49891234{n:04d}", [f"+490891234{n:04d}"]),
        "RU": (f"+7495123{n:04d}", [f"+78495123{n:04d}"]),
        "HU": (f"+361234{n:04d}", [f"+36061234{n:04d}"]),
        "AR": (f"+549112345{n:04d}", [f"+5411152345{n:04d}", f"+54011152345{n:04d}"]),
    }


REGIONS = ["US", "GB", "DE", "RU", "HU", "AR"]
ALICE = user(f"alice-{secrets.token_hex(4)}")


@pytest.mark.parametrize("region", REGIONS)
def test_the_destination_limit_counts_every_spelling_of_a_number_together(
        region, monkeypatch, app_env):
    number, others = regional(1)[region]
    spellings = [number, *others]
    monkeypatch.setenv("RATE_LIMIT_PER_DESTINATION", str(len(spellings)))
    answers = [created(send(spelling, ALICE)) for spelling in spellings]
    assert [sms["to"] for sms in answers] == [number] * len(spellings)  # what was used
    document = refused(send(others[-1], ALICE), 429, "rate-limited")
    assert document["limit"] == "per-destination"
    asked = {message["sid"]: message["to"] for message in app_env.messages}
    assert [asked[sms["sid"]] for sms in answers] == [number] * len(spellings)  # by Twilio


def stop_from(spelling: str, body: str = "STOP") -> None:
    """An incoming keyword, signed by Twilio over the parameters as it sent them."""
    assert replies(receive(inbound_params(spelling, body, OptOutType=body))) == []


@pytest.mark.parametrize("region", REGIONS)
def test_an_opt_out_in_one_spelling_stops_a_send_in_any_other(region):
    number, others = regional(2)[region]
    stop_from(others[0])  # verified as received: canonicalised only after the signature
    for spelling in (number, *others):
        refused(send(spelling, ALICE), 403, "recipient-opted-out")
    stop_from(number, "START")
    assert created(send(others[-1], ALICE))["to"] == number


def test_numbers_kept_apart_have_opt_outs_of_their_own():
    mobile, fixed = f"+39312345{3:04d}", f"+390312345{3:04d}"  # Italy: the 0 is significant
    stop_from(mobile)
    refused(send(mobile, ALICE), 403, "recipient-opted-out")
    assert created(send(fixed, ALICE))["to"] == fixed


@pytest.mark.parametrize("region", REGIONS)
def test_a_thread_is_one_whichever_spelling_sends_replies_or_reads_it(region):
    number, others = regional(4)[region]
    bob = user(f"bob-{secrets.token_hex(4)}")
    send(others[0], bob)
    reply = inbound_params(others[-1], "Who is this?")
    assert replies(receive(reply)) == []
    for spelling in (number, *others):
        view = thread_of(spelling, bob)
        assert view["number"] == number
        assert [(m["direction"], m["from"], m["to"]) for m in view["items"]] == [
            ("incoming", number, FROM_NUMBER), ("outgoing", FROM_NUMBER, number)]


def test_a_sender_in_another_spelling_is_the_number_it_names(monkeypatch, app_env):
    monkeypatch.setenv("TWILIO_FROM_NUMBER", f"+11{FROM_NUMBER[2:]}")  # the setting, too
    to = unique.number()
    sms = created(send(f"+11{to[2:]}", ALICE, from_=f"+11{FROM_NUMBER[2:]}"))
    assert (sms["to"], sms["from"]) == (to, FROM_NUMBER)
    call = created(invoke("make_call", request(
        "POST", f"{ORIGIN}/api/make_call", headers=ALICE,
        json_body={"to": f"+11{to[2:]}", "from": f"+11{FROM_NUMBER[2:]}"})))
    assert (call["to"], call["from"]) == (to, FROM_NUMBER)
    placed = app_env.calls[-1]
    assert (placed["to"], placed["from"]) == (to, FROM_NUMBER)


VOICE_URL = f"{ORIGIN}/api/voice"


def dial(to: str, identity: str) -> ET.Element:
    params = {"AccountSid": ACCOUNT_SID, "CallSid": "CA" + secrets.token_hex(16),
              "CallStatus": "ringing", "Direction": "inbound", "ApiVersion": "2010-04-01",
              "From": f"client:{identity}", "To": to}
    signature = RequestValidator(AUTH_TOKEN).compute_signature(VOICE_URL, params)
    response = invoke("voice", request("POST", VOICE_URL, form=params,
                                       headers={"X-Twilio-Signature": signature}))
    assert response.status_code == 200, response.get_body()
    return ET.fromstring(response.get_body())


@pytest.mark.parametrize("region", REGIONS)
def test_voice_dials_the_canonical_number_and_counts_it_with_make_call(region, monkeypatch):
    number, others = regional(5)[region]
    monkeypatch.setenv("RATE_LIMIT_PER_DESTINATION", str(len(others)))
    identity = identity_for(Caller(f"carol-{secrets.token_hex(4)}", "aad"), load_settings())
    for spelling in others:
        [dialed] = dial(spelling, identity).iter("Number")
        assert dialed.text == number
    call = invoke("make_call", request("POST", f"{ORIGIN}/api/make_call", headers=ALICE,
                                       json_body={"to": number}))
    assert refused(call, 429, "rate-limited")["limit"] == "per-destination"
    assert [verb.tag for verb in dial(number, identity)] == ["Say", "Hangup"]
