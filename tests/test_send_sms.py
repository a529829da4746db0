"""send_sms through the real twilio library to the loopback sandbox."""

from __future__ import annotations

import json

import pytest
from harness import (
    ACCOUNT_SID,
    API_KEY_SECRET,
    API_KEY_SID,
    APP_URL,
    FROM_NUMBER,
    created,
    invoke,
    refused,
    request,
)

URL = f"{APP_URL}/send_sms?code=fake-function-key"
TO = "+14155552671"


def send(**kwargs):
    return invoke("send_sms", request("POST", URL, **kwargs))


def test_sends_sms_from_the_configured_number(app_env):
    body = created(send(json_body={"to": TO, "body": "hi <there> & you"}))

    [message] = app_env.messages
    assert body["sid"] == message["sid"] and body["sid"].startswith("SM")
    assert body["to"] == TO and body["from"] == FROM_NUMBER
    assert body["status"] == message["status"]
    assert body["date_created"]
    assert message["to"] == TO and message["from"] == FROM_NUMBER
    assert message["body"] == "hi <there> & you"


def test_accepts_form_bodies_and_mms_media(app_env):
    media = ["https://example.com/a.png", "https://example.com/b.png"]
    created(send(form=[("to", TO), ("media_url", media[0]), ("media_url", media[1])]))

    [message] = app_env.messages
    assert message["request"]["MediaUrl"] == media
    assert "Body" not in message["request"]


SERVICE = "MG" + "c3" * 16


def test_a_sender_other_than_the_default_is_refused_before_twilio(app_env):
    """201 vs 21606 would tell a key holder which numbers the account owns: no Twilio call."""
    for other in ("+15005550007", "+14155550100"):
        response = send(json_body={"to": TO, "body": "x", "from": other})
        document = refused(response, 403, "sender-refused")
        assert document["field"] == "from" and other not in document["detail"]
    assert app_env.messages == []
    created(send(json_body={"to": TO, "body": "x", "from": FROM_NUMBER}))  # the default


def test_a_client_from_never_silently_bypasses_the_messaging_service(app_env, monkeypatch):
    monkeypatch.setenv("TWILIO_MESSAGING_SERVICE_SID", SERVICE)
    response = send(json_body={"to": TO, "body": "x", "from": FROM_NUMBER})
    refused(response, 403, "sender-refused")
    assert app_env.messages == []


def test_an_allowed_client_from_wins_over_the_messaging_service(app_env, monkeypatch):
    """A `from` that is not the default number, allowed, replaces the service as sender."""
    monkeypatch.setenv("TWILIO_MESSAGING_SERVICE_SID", SERVICE)
    monkeypatch.setenv("TWILIO_FROM_NUMBER", "+14155550100")
    monkeypatch.setenv("ALLOWED_FROM_NUMBERS", FROM_NUMBER)
    body = created(send(json_body={"to": TO, "body": "x", "from": FROM_NUMBER}))

    sent = app_env.messages[0]["request"]
    assert sent["From"] == FROM_NUMBER != "+14155550100"
    assert "MessagingServiceSid" not in sent
    assert body["from"] == FROM_NUMBER


def test_messaging_service_is_the_sender_when_no_from_is_given(app_env, monkeypatch):
    monkeypatch.setenv("TWILIO_MESSAGING_SERVICE_SID", SERVICE)
    created(send(json_body={"to": TO, "body": "x"}))

    sent = app_env.messages[0]["request"]
    assert sent["MessagingServiceSid"] == SERVICE
    assert "From" not in sent


def test_authenticates_with_the_account_sid_by_default(app_env):
    created(send(json_body={"to": TO, "body": "x"}))
    assert app_env.messages[0]["auth_username"] == ACCOUNT_SID


def test_prefers_the_api_key_when_one_is_set(app_env, monkeypatch):
    monkeypatch.setenv("TWILIO_API_KEY_SID", API_KEY_SID)
    monkeypatch.setenv("TWILIO_API_KEY_SECRET", API_KEY_SECRET)
    created(send(json_body={"to": TO, "body": "x"}))
    assert app_env.messages[0]["auth_username"] == API_KEY_SID


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"body": "x"}, "to"),
        ({"to": "4155552671", "body": "x"}, "to"),
        ({"to": "+1415555267", "body": "x"}, "to"),
        ({"to": "+1 415 555 2671", "body": "x"}, "to"),
        ({"to": 14155552671, "body": "x"}, "to"),
        ({"to": TO}, "body"),
        ({"to": TO, "body": "x" * 1601}, "body"),
        ({"to": TO, "body": "bell\x07"}, "body"),
        ({"to": TO, "body": "x", "from": "twilio"}, "from"),
        ({"to": TO, "media_url": ["http://example.com/a.png"]}, "media_url"),
        ({"to": TO, "media_url": ["https://example.com/a.png"] * 11}, "media_url"),
        ({"to": TO, "media_url": "not a url"}, "media_url"),
        ({"To": TO, "body": "x"}, "To"),
        ({"to": TO, "body": "x", "url": "https://evil.example/twiml"}, "url"),
    ],
)
def test_invalid_fields_get_400_naming_the_field(app_env, payload, field):
    response = send(json_body=payload)
    assert refused(response, 400, "invalid-field")["field"] == field
    assert app_env.messages == []


@pytest.mark.parametrize(
    ("body", "content_type", "status", "kind"),
    [
        (b"{not json", "application/json", 400, "invalid-body"),
        (b"[1, 2]", "application/json", 400, "invalid-body"),
        (b"\xff\xfe", "application/json", 400, "invalid-body"),
        (b"[" * 5000 + b"]" * 5000, "application/json", 400, "invalid-body"),
        (b"to=x", "text/plain", 415, "unsupported-media-type"),
        (b"{}", "", 415, "unsupported-media-type"),
        (b"{" + b" " * 70000 + b"}", "application/json", 413, "body-too-large"),
    ],
)
def test_malformed_bodies_get_their_status(app_env, body, content_type, status, kind):
    response = send(body=body, headers={"Content-Type": content_type})
    refused(response, status, kind)


def test_other_methods_get_405_with_allow(app_env):
    response = invoke("send_sms", request("GET", URL))
    refused(response, 405, "method-not-allowed")
    assert response.headers["Allow"] == "POST"


def test_premium_destination_refused_with_403(app_env):
    response = send(json_body={"to": "+19005551234", "body": "x"})
    assert refused(response, 403, "destination-refused")["field"] == "to"
    assert app_env.messages == []


def test_premium_destination_allowed_when_configured(app_env, monkeypatch):
    monkeypatch.setenv("ALLOW_PREMIUM_NUMBERS", "true")
    created(send(json_body={"to": "+19005551234", "body": "x"}))


def test_country_outside_the_allowed_list_refused(app_env, monkeypatch):
    monkeypatch.setenv("ALLOWED_COUNTRIES", "CA, fr")
    response = send(json_body={"to": TO, "body": "x"})
    document = refused(response, 403, "destination-refused")
    assert document["field"] == "to" and "US" in document["detail"]
    created(send(json_body={"to": "+33612345678", "body": "x"}))


@pytest.mark.parametrize(
    ("to", "from_", "code"),
    [
        ("+15005550001", FROM_NUMBER, 21211),
        ("+15005550002", FROM_NUMBER, 21612),
        ("+15005550003", FROM_NUMBER, 21408),
        ("+15005550009", FROM_NUMBER, 21614),
        (TO, "+15005550001", 21212),
        (TO, "+15005550007", 21606),
        (TO, "+15005550008", 21611),
    ],
)
def test_twilio_refusals_keep_their_code(app_env, monkeypatch, to, from_, code):
    monkeypatch.setenv("ALLOWED_FROM_NUMBERS", from_)
    response = send(json_body={"to": to, "body": "x", "from": from_})
    document = refused(response, 400, "twilio-refused")
    assert document["twilio_code"] == code
    assert document["more_info"] == f"https://www.twilio.com/docs/errors/{code}"


# --- declared charsets: decoded as declared, or refused; never guessed ------------------


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "UTF-32", "utf-8", "US-ASCII"])
def test_json_in_a_unicode_charset_is_decoded_as_declared(app_env, encoding):
    payload = {"to": TO, "body": "Table ready" if encoding == "US-ASCII" else "Café ☎ ready"}
    body = json.dumps(payload, ensure_ascii=False).encode(encoding)
    created(send(body=body, headers={"Content-Type": f"application/json; charset={encoding}"}))
    assert app_env.messages[0]["body"] == payload["body"]


@pytest.mark.parametrize("content_type", [
    "application/json; charset=iso-8859-1", "application/json; charset=x-unknown",
    "application/json; charset=rot13", "application/x-www-form-urlencoded; charset=utf-16",
    "application/x-www-form-urlencoded; charset=windows-1252"])
def test_other_charsets_are_refused_with_415(app_env, content_type):
    body = "to=+14155552671&body=caf\xe9".encode("latin-1")
    if content_type.startswith("application/json"):
        body = '{"to": "+14155552671", "body": "caf\xe9"}'.encode("latin-1")
    response = send(body=body, headers={"Content-Type": content_type})
    refused(response, 415, "unsupported-media-type")
    assert app_env.messages == []


@pytest.mark.parametrize("body", [b"to=%2B14155552671&body=caf%E9",
                                  b"to=%2B14155552671&body=caf\xe9"])
def test_a_form_that_is_not_utf8_is_refused_not_sent_as_mojibake(app_env, body):
    response = send(body=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
    refused(response, 400, "invalid-body")
    assert app_env.messages == []


def test_a_utf8_form_keeps_its_text(app_env):
    created(send(body=b"to=%2B14155552671&body=caf%C3%A9+%E2%98%8E",
                 headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}))
    assert app_env.messages[0]["body"] == "café ☎"
