"""shared/webhook.py through twiml: only what Twilio sends, for this account, is answered.

Each refusal here is made with a valid signature (or with checks off), so it is
the shape or the account that is refused, not the signature.
"""

from __future__ import annotations

import hashlib
import json
from urllib.parse import urlencode

import pytest
from harness import ACCOUNT_SID, AUTH_TOKEN, invoke, problem, request
from twilio.request_validator import RequestValidator

ORIGIN = "https://contoso.azurewebsites.net"
URL = f"{ORIGIN}/api/twiml"
CALL = {"CallSid": "CA" + "d4" * 16, "AccountSid": ACCOUNT_SID, "From": "+15005550006",
        "To": "+14155552671", "CallStatus": "in-progress", "Direction": "outbound-api"}
OTHER_ACCOUNT = "AC" + "f0" * 16


@pytest.fixture(autouse=True)
def on_azure(app_env, monkeypatch):
    monkeypatch.setenv("WEBSITE_HOSTNAME", "contoso.azurewebsites.net")


def sign(url, params=None):
    return RequestValidator(AUTH_TOKEN).compute_signature(url, params or {})


def post(url, form, signature=None, *, body=None, content_type=None):
    headers = {"X-Twilio-Signature": signature} if signature is not None else {}
    if content_type:
        headers["Content-Type"] = content_type
    return invoke("twiml", request("POST", url, form=form, body=body, headers=headers))


def refused_as(response, slug):
    document = problem(response)
    assert response.status_code == 403
    assert document["type"] == f"urn:twilio-functions:problem:{slug}"
    return document


def says(response):
    assert response.status_code == 200, response.get_body()
    return response.get_body().decode()


# --- AccountSid ---------------------------------------------------------------------


def test_a_signed_request_for_another_account_is_refused(app_env):
    form = {**CALL, "AccountSid": OTHER_ACCOUNT}
    document = refused_as(post(URL, form, sign(URL, form)), "webhook-refused")
    assert document["field"] == "AccountSid"
    assert OTHER_ACCOUNT not in document["detail"] and ACCOUNT_SID not in document["detail"]


def test_the_account_is_checked_even_with_signature_checks_off(app_env, monkeypatch):
    monkeypatch.setenv("TWILIO_VALIDATE_SIGNATURE", "false")
    refused_as(post(URL, {**CALL, "AccountSid": OTHER_ACCOUNT}), "webhook-refused")
    get = invoke("twiml", request("GET", f"{URL}?AccountSid={OTHER_ACCOUNT}"))
    refused_as(get, "webhook-refused")
    assert "<Say" in says(post(URL, CALL))


def test_this_account_or_none_is_answered(app_env):
    assert "<Say" in says(post(URL, CALL, sign(URL, CALL)))
    without = {k: v for k, v in CALL.items() if k != "AccountSid"}
    assert "<Say" in says(post(URL, without, sign(URL, without)))


# --- field names ----------------------------------------------------------------------


def test_a_re_cut_signed_request_is_refused(app_env):
    """Twilio signs URL + names + values with no separators: part of the signed URL can be
    moved into the first field's name, here dropping ``voice=man`` from the query."""
    url = f"{URL}?{urlencode({'message': 'Your table is ready', 'voice': 'man'})}"
    signature = sign(url, CALL)
    assert 'voice="man"' in says(post(url, CALL, signature))

    cut = url.index("&voice=")
    moved, first = url[cut:], min(CALL)
    re_cut = {**{k: v for k, v in CALL.items() if k != first}, moved + first: CALL[first]}
    assert sign(url[:cut], re_cut) == signature  # the forgery carries a valid signature
    refused_as(post(url[:cut], re_cut, signature), "webhook-refused")


@pytest.mark.parametrize("name", ["To Be", "x-y", "Sip_Header", "Message[\u0661]",
                                  "\uff21ccountSid", "Message[1", "[0]", "Digits&x", "café"])
def test_names_outside_twilios_shape_are_refused_even_when_signed(app_env, name):
    form = {**CALL, name: "1"}
    document = refused_as(post(URL, form, sign(URL, form)), "webhook-refused")
    assert name not in json.dumps(document, ensure_ascii=False)  # not echoed


@pytest.mark.parametrize("name", ["MediaUrl0", "Message[12]", "StirVerstat", "Digits"])
def test_twilio_shaped_names_are_answered(app_env, name):
    form = {**CALL, name: "1"}
    says(post(URL, form, sign(URL, form)))


# --- bodySHA256: the raw bytes ---------------------------------------------------------


def _json_webhook(raw: bytes):
    url = f"{URL}?{urlencode({'bodySHA256': hashlib.sha256(raw).hexdigest()})}"
    return url, sign(url)


def test_a_json_body_is_hashed_over_its_raw_bytes(app_env):
    """As Twilio does: bytes that are not UTF-8 are not replaced before hashing."""
    raw = b'{"CallSid": "CA1", "Note": "\xff"}'
    url, signature = _json_webhook(raw)
    says(post(url, None, signature, body=raw, content_type="application/json"))


def test_a_json_body_cannot_be_swapped_for_one_that_decodes_alike(app_env):
    genuine = '{"CallSid": "CA1", "Note": "\ufffd"}'.encode()
    url, signature = _json_webhook(genuine)
    says(post(url, None, signature, body=genuine, content_type="application/json"))
    forged = genuine.replace("\ufffd".encode(), b"\xff")
    refused_as(post(url, None, signature, body=forged, content_type="application/json"),
               "invalid-signature")


def test_a_repeated_body_hash_is_refused(app_env):
    raw = b'{"CallSid": "CA1"}'
    digest = hashlib.sha256(raw).hexdigest()
    url = f"{URL}?bodySHA256={digest}&bodySHA256={digest}"
    refused_as(post(url, None, sign(url), body=raw, content_type="application/json"),
               "invalid-signature")


# --- charsets (issue point 12, the webhook side) --------------------------------------


def test_a_form_in_another_charset_is_refused_with_415(app_env):
    body = urlencode(CALL).encode()
    response = post(URL, None, sign(URL, CALL), body=body,
                    content_type="application/x-www-form-urlencoded; charset=iso-8859-1")
    assert response.status_code == 415
    assert problem(response)["type"].endswith(":unsupported-media-type")


def test_a_form_that_is_not_utf8_is_refused_not_read_as_empty(app_env, monkeypatch):
    monkeypatch.setenv("TWILIO_VALIDATE_SIGNATURE", "false")
    body = urlencode(CALL).encode() + b"&Body=caf%E9"
    response = post(URL, None, body=body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400
    assert problem(response)["type"].endswith(":invalid-body")


def test_a_declared_utf8_form_is_read(app_env):
    params = {**CALL, "Body": "café ☎"}
    body = urlencode(params).encode()
    says(post(URL, None, sign(URL, params), body=body,
              content_type="application/x-www-form-urlencoded; charset=UTF-8"))
