"""make_call: Twilio gets the call, and its TwiML URL is always this app's twiml."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from harness import APP_URL, FROM_NUMBER, created, invoke, problem, refused, request

from shared.voice import DEFAULT_MESSAGE

TO = "+14155552671"


def call(payload, url=f"{APP_URL}/make_call?code=fake-function-key"):
    return invoke("make_call", request("POST", url, json_body=payload))


def test_places_the_call_with_the_apps_own_twiml_url(app_env):
    body = created(call({"to": TO, "message": "Your code is 1234", "voice": "Polly.Amy",
                         "language": "en-GB"}))

    [placed] = app_env.calls
    assert body == {"sid": placed["sid"], "status": placed["status"], "to": TO,
                    "from": FROM_NUMBER}
    assert body["sid"].startswith("CA")
    sent = placed["request"]
    assert sent["To"] == TO and sent["From"] == FROM_NUMBER
    url = urlsplit(sent["Url"])
    assert (url.scheme, url.netloc, url.path) == ("http", "localhost:7071", "/api/twiml")
    assert parse_qs(url.query) == {"message": ["Your code is 1234"], "voice": ["Polly.Amy"],
                                   "language": ["en-GB"]}
    assert "code" not in parse_qs(url.query), "the function key must never reach Twilio"
    assert sent["Method"] == "POST"  # asked for explicitly, not left to Twilio's default


def test_default_message_and_route_prefix_follow_the_request(app_env):
    created(call({"to": TO}, url="http://127.0.0.1:7071/custom/make_call"))
    url = urlsplit(app_env.calls[0]["request"]["Url"])
    assert url.geturl().startswith("http://127.0.0.1:7071/custom/twiml?")
    assert parse_qs(url.query)["message"] == [DEFAULT_MESSAGE]


@pytest.mark.parametrize("origin", ["http://localhost:7071", "http://127.0.0.1:8080",
                                    "http://[::1]:7071", "https://LOCALHOST"])
def test_without_a_configured_origin_a_loopback_request_lends_its_own(app_env, origin):
    created(call({"to": TO}, url=f"{origin}/api/make_call"))
    assert app_env.calls[0]["request"]["Url"].startswith(f"{origin}/api/twiml?")


@pytest.mark.parametrize("host", ["attacker.example", "localhost.attacker.example",
                                  "127.0.0.1.nip.io", "127.1", "10.0.0.4", "[::ffff:7f00:1]",
                                  "user@attacker.example"])
def test_without_a_configured_origin_another_host_is_a_misconfiguration(app_env, host):
    """A Host header must never choose where Twilio fetches the call's TwiML."""
    response = call({"to": TO}, url=f"http://{host}:7071/api/make_call")
    document = refused(response, 500, "misconfigured")
    assert document["setting"] == "PUBLIC_BASE_URL"
    assert app_env.calls == []


def test_public_base_url_builds_the_twiml_url(app_env, monkeypatch):
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://calls.contoso.com/")
    created(call({"to": TO}, url="http://10.0.0.4:80/api/make_call"))
    assert app_env.calls[0]["request"]["Url"].startswith("https://calls.contoso.com/api/twiml?")


@pytest.mark.parametrize("field", ["url", "twiml", "Url", "application_sid"])
def test_client_cannot_choose_the_twiml(app_env, field):
    response = call({"to": TO, field: "https://evil.example/premium.xml"})
    assert refused(response, 400, "invalid-field")["field"] == field
    assert app_env.calls == []


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"to": TO, "voice": "robot\"><Dial>"}, "voice"),
        ({"to": TO, "language": "english please"}, "language"),
        ({"to": TO, "message": "x" * 1001}, "message"),
        ({"to": "+44 20 7946 0958"}, "to"),
    ],
)
def test_invalid_fields(app_env, payload, field):
    response = call(payload)
    assert refused(response, 400, "invalid-field")["field"] == field


@pytest.mark.parametrize("to", ["+19005551234", "+448712345678", "+33899123456"])
def test_premium_rate_destinations_are_refused(app_env, to):
    response = call({"to": to})
    refused(response, 403, "destination-refused")
    assert app_env.calls == []


@pytest.mark.parametrize(
    ("to", "from_", "code"),
    [
        ("+15005550001", FROM_NUMBER, 21217),
        ("+15005550002", FROM_NUMBER, 21214),
        ("+15005550003", FROM_NUMBER, 21215),
        ("+15005550004", FROM_NUMBER, 21216),
        (TO, "+15005550001", 21212),
        (TO, "+14155550000", 21210),
    ],
)
def test_twilio_refusals_keep_their_code(app_env, monkeypatch, to, from_, code):
    monkeypatch.setenv("ALLOWED_FROM_NUMBERS", from_)
    response = call({"to": to, "from": from_})
    assert refused(response, 400, "twilio-refused")["twilio_code"] == code


def test_missing_default_sender_is_a_misconfiguration(app_env, monkeypatch):
    monkeypatch.delenv("TWILIO_FROM_NUMBER")
    response = call({"to": TO})
    assert refused(response, 500, "misconfigured")["setting"] == "TWILIO_FROM_NUMBER"


def test_malformed_host_is_a_400_not_a_500(app_env):
    response = call({"to": TO}, url="http://[x/api/make_call")
    refused(response, 400, "invalid-request")
    assert app_env.calls == []


def test_azure_host_name_is_the_origin_and_the_host_header_is_ignored(app_env, monkeypatch):
    monkeypatch.setenv("WEBSITE_HOSTNAME", "contoso.azurewebsites.net")
    created(call({"to": TO}, url="https://attacker.example:8443/api/make_call"))
    assert app_env.calls[0]["request"]["Url"].startswith(
        "https://contoso.azurewebsites.net/api/twiml?")


@pytest.mark.parametrize("path", ["/api/make_call/", "/api//make_call", "/api/MAKE_CALL"])
def test_path_variants_still_point_at_twiml(app_env, path):
    created(call({"to": TO}, url=f"http://localhost:7071{path}"))
    assert urlsplit(app_env.calls[0]["request"]["Url"]).path == "/api/twiml"


def test_message_too_long_once_encoded_is_refused_before_calling(app_env):
    response = call({"to": TO, "message": "電" * 1000})
    assert refused(response, 400, "invalid-field")["field"] == "message"
    assert app_env.calls == []
    created(call({"to": TO, "message": "a" * 1000}))


def test_a_caller_id_other_than_the_default_is_refused_before_twilio(app_env):
    """Any number of the account as caller ID, and 201 vs 21210 to enumerate them: no more."""
    response = call({"to": TO, "from": "+14155550100"})
    document = refused(response, 403, "sender-refused")
    assert document["field"] == "from" and "+14155550100" not in document["detail"]
    assert app_env.calls == []
    created(call({"to": TO, "from": FROM_NUMBER}))  # the default itself is no choice


def test_allowed_from_numbers_lets_the_client_choose_its_caller_id(app_env, monkeypatch):
    monkeypatch.setenv("TWILIO_FROM_NUMBER", "+14155550100")
    monkeypatch.setenv("ALLOWED_FROM_NUMBERS", f"+14155550199, {FROM_NUMBER}")
    body = created(call({"to": TO, "from": FROM_NUMBER}))
    assert body["from"] == FROM_NUMBER
    assert app_env.calls[0]["request"]["From"] == FROM_NUMBER
    refused = call({"to": TO, "from": "+14155550142"})
    assert problem(refused)["type"] == "urn:twilio-functions:problem:sender-refused"
