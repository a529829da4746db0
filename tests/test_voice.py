"""voice: the TwiML App's Voice URL, signed as Twilio signs it, with the store on Azurite."""

from __future__ import annotations

import asyncio
import logging
import secrets
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import unique
from harness import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, invoke, problem, request
from live import ROOMY_LIMITS
from storage import storage_env
from twilio.request_validator import RequestValidator

from shared.client_identity import identity_for
from shared.identity import Caller
from shared.problems import Problem
from shared.settings import load_settings
from shared.voice_calls import VoiceCall, connect

URL = "https://contoso.azurewebsites.net/api/voice"
APP_SID = "AP" + "c3" * 16
ALLOWED = "+14155552671"


@pytest.fixture(autouse=True)
def voice_env(app_env, monkeypatch):
    """As deployed: Azure's host name is the origin Twilio signs; the store is Azurite;
    users sign in with App Service Authentication (their identities exist only then)."""
    for name, value in {"WEBSITE_HOSTNAME": "contoso.azurewebsites.net",
                        "WEBSITE_AUTH_ENABLED": "True", "ALLOWED_COUNTRIES": "US,CA",
                        **storage_env(), **ROOMY_LIMITS}.items():
        monkeypatch.setenv(name, value)
    return app_env


def user_identity() -> str:
    """The identity voice_token gives a newly signed-in user."""
    user = Caller(f"{secrets.token_hex(4)}-4b1d-4c2e-9f3a-{secrets.token_hex(6)}", "aad")
    return identity_for(user, load_settings())


def params(from_: str, to: str) -> dict[str, str]:
    """What Twilio posts to a TwiML App's Voice URL when a call starts."""
    return {"AccountSid": ACCOUNT_SID, "ApplicationSid": APP_SID,
            "CallSid": "CA" + secrets.token_hex(16), "CallStatus": "ringing",
            "Direction": "inbound", "ApiVersion": "2010-04-01",
            "From": from_, "Caller": from_, "To": to}


def post(form: dict[str, str], *, signed: bool = True):
    headers = ({"X-Twilio-Signature": RequestValidator(AUTH_TOKEN).compute_signature(URL, form)}
               if signed else {})
    return invoke("voice", request("POST", URL, form=form, headers=headers))


def verbs(response) -> list[ET.Element]:
    assert response.status_code == 200, response.get_body()
    assert response.mimetype == "text/xml"
    root = ET.fromstring(response.get_body())
    assert root.tag == "Response"
    return list(root)


def assert_refused(response, spoken: str) -> None:
    say, hangup = verbs(response)
    assert (say.tag, hangup.tag) == ("Say", "Hangup")
    assert spoken in say.text


def test_an_app_call_to_an_allowed_number_is_dialed_with_the_apps_caller_id():
    [dial] = verbs(post(params(f"client:{user_identity()}", ALLOWED)))
    assert dial.tag == "Dial" and dial.get("callerId") == FROM_NUMBER
    assert dial.get("answerOnBridge") == "true"
    [number] = list(dial)
    assert (number.tag, number.text) == ("Number", ALLOWED)


@pytest.mark.parametrize(("to", "why"), [
    ("+447911123456", "country"),  # GB: not in ALLOWED_COUNTRIES
    ("+19004444444", "premium"),
    ("+881612345678", "country"),
])
def test_a_refused_destination_is_told_hung_up_and_logged(to, why, caplog):
    caplog.set_level(logging.WARNING, "twilio_functions")
    assert_refused(post(params(f"client:{user_identity()}", to)), "cannot call that number")
    [line] = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert "function=voice" in line and to not in line and why in line


def test_premium_numbers_are_refused_even_in_an_allowed_country(monkeypatch):
    monkeypatch.delenv("ALLOWED_COUNTRIES")
    assert_refused(post(params(f"client:{user_identity()}", "+19004444444")),
                   "cannot call that number")


@pytest.mark.parametrize("from_", ["client:", "client:bob smith", "client:user_3aaad_3a",
                                   "client:user_3aaad_3Abob", "client:mallory"])
def test_a_caller_identity_this_app_did_not_issue_is_refused(from_):
    assert_refused(post(params(from_, ALLOWED)), "cannot be placed")


def test_calls_count_against_make_calls_limits(monkeypatch):
    monkeypatch.setenv("RATE_LIMIT_PER_DESTINATION", "1")
    destination = unique.number()
    assert verbs(post(params(f"client:{user_identity()}", destination)))[0].tag == "Dial"
    assert_refused(post(params(f"client:{user_identity()}", destination)), "too many calls")


def test_calls_are_limited_per_user(monkeypatch):
    monkeypatch.setenv("RATE_LIMIT_CALLS_PER_CALLER", "2")
    alice, bob = f"client:{user_identity()}", f"client:{user_identity()}"
    for _ in range(2):
        assert verbs(post(params(alice, ALLOWED)))[0].tag == "Dial"
    assert_refused(post(params(alice, ALLOWED)), "too many calls")
    assert verbs(post(params(bob, ALLOWED)))[0].tag == "Dial"


def test_refused_destinations_do_not_count_toward_the_limit(monkeypatch):
    monkeypatch.setenv("RATE_LIMIT_CALLS_PER_CALLER", "1")
    alice = f"client:{user_identity()}"
    assert_refused(post(params(alice, "+19004444444")), "cannot call that number")
    assert verbs(post(params(alice, ALLOWED)))[0].tag == "Dial"


def test_client_to_client_only_when_enabled(monkeypatch):
    alice, bob = user_identity(), user_identity()
    assert_refused(post(params(f"client:{alice}", f"client:{bob}")), "between app users")
    monkeypatch.setenv("VOICE_ALLOW_CLIENT_TO_CLIENT", "true")
    [dial] = verbs(post(params(f"client:{alice}", f"client:{bob}")))
    [client] = list(dial)
    assert (client.tag, client.text) == ("Client", bob)


def test_only_a_call_dialing_a_number_needs_a_status_callback_url(monkeypatch):
    """The URL the dialed leg reports to is built for a number's call, not for another."""
    monkeypatch.setenv("VOICE_ALLOW_CLIENT_TO_CLIENT", "true")
    settings, alice = load_settings(), user_identity()
    on_port_0 = "https://contoso.azurewebsites.net:0/api/voice"  # no URL can be built on it
    to_bob = VoiceCall("CA" + secrets.token_hex(16), f"client:{alice}",
                       f"client:{user_identity()}", "ringing")
    assert "<Client>" in asyncio.run(connect(to_bob, settings, on_port_0))
    to_number = VoiceCall("CA" + secrets.token_hex(16), f"client:{alice}", ALLOWED, "ringing")
    with pytest.raises(Problem) as refused:
        asyncio.run(connect(to_number, settings, on_port_0))
    assert refused.value.status == 400


def test_the_single_user_identity_may_call(monkeypatch):
    monkeypatch.setenv("VOICE_SINGLE_USER_IDENTITY", "solo")
    assert verbs(post(params("client:solo", ALLOWED)))[0].tag == "Dial"


def test_a_call_to_the_twilio_number_rings_the_incoming_identity(monkeypatch):
    from_phone = params(unique.number(), FROM_NUMBER)  # a caller no test's user texted
    assert_refused(post(from_phone), "does not take calls")
    monkeypatch.setenv("VOICE_INCOMING_IDENTITY", "solo")
    [dial] = verbs(post(from_phone))
    [client] = list(dial)
    assert (client.tag, client.text) == ("Client", "solo")


def test_unsigned_or_other_account_is_refused():
    form = params(f"client:{user_identity()}", ALLOWED)
    assert problem(post(form, signed=False))["status"] == 403
    other = {**form, "AccountSid": "AC" + "f0" * 16}
    assert problem(post(other))["type"].endswith(":webhook-refused")


def test_without_a_caller_id_the_app_is_misconfigured(monkeypatch):
    monkeypatch.delenv("TWILIO_FROM_NUMBER")
    document = problem(post(params(f"client:{user_identity()}", ALLOWED)))
    assert (document["status"], document["setting"]) == (500, "TWILIO_FROM_NUMBER")


def test_a_webhook_without_a_call_is_refused():
    form = params(f"client:{user_identity()}", ALLOWED)
    del form["CallSid"]
    assert problem(post(form))["field"] == "CallSid"


def test_voice_imports_neither_the_rest_client_nor_the_token_library():
    """Twilio waits on voice while the caller hears silence: cold starts stay short."""
    probe = ("import sys, voice; "
             "print(sorted(m for m in ('twilio.rest', 'twilio.jwt') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True, cwd=Path(__file__).parents[1])
    assert result.stdout.strip() == "[]"


def test_only_the_token_module_touches_twilio_jwt():
    root = Path(__file__).parents[1]
    importers = {path.relative_to(root).as_posix()
                 for folder in ("shared", "voice", "voice_token", "make_call", "send_sms",
                                "twiml", "status", "status_callback")
                 for path in (root / folder).glob("*.py") if "twilio.jwt" in path.read_text()}
    assert importers == {"shared/voice_token.py"}
