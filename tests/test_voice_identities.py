"""voice accepts exactly the identities voice_token issues, under the settings of the moment.

Both ways: each identity ``voice_token`` answers (the real function, for
users of several providers and shapes of ID, and for the single-user
identity) places a call through ``voice``, counted for that same user; and
what ``voice_token`` would not answer now (the single-user identity once
``REQUIRE_SIGNED_IN_USER`` is set, a user's once Easy Auth is off, spellings
it never writes) is refused before anything is counted.
"""

from __future__ import annotations

import json
import secrets

import pytest
import unique
from harness import API_KEY_SECRET, API_KEY_SID, invoke, refused, request
from live import ROOMY_LIMITS
from storage import storage_env
from test_voice import assert_refused, params, post, verbs
from test_voice_token import signed_in

ORIGIN = "https://contoso.azurewebsites.net"
APP_SID = "AP" + "c3" * 16
# The harness's fake API key secret is shorter than Twilio's 32 characters.
pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")


@pytest.fixture(autouse=True)
def deployed(app_env, monkeypatch):
    """On Azure with App Service Authentication, an API key and a TwiML App; store on Azurite."""
    for name, value in {"WEBSITE_HOSTNAME": "contoso.azurewebsites.net",
                        "WEBSITE_AUTH_ENABLED": "True", "TWILIO_API_KEY_SID": API_KEY_SID,
                        "TWILIO_API_KEY_SECRET": API_KEY_SECRET, "TWILIO_TWIML_APP_SID": APP_SID,
                        **storage_env(), **ROOMY_LIMITS}.items():
        monkeypatch.setenv(name, value)
    return app_env


def ask_token(headers: dict[str, str]):
    return invoke("voice_token", request("POST", f"{ORIGIN}/api/voice_token", headers=headers))


def token_identity(headers: dict[str, str]) -> str:
    response = ask_token(headers)
    assert response.status_code == 200, response.get_body()
    return json.loads(response.get_body())["identity"]


def call_from(identity: str, to: str | None = None):
    return post(params(f"client:{identity}", to or unique.number()))


def dialed(response) -> str:
    [dial] = verbs(response)
    assert dial.tag == "Dial", dial.tag
    [callee] = list(dial)
    return callee.text or ""


def make_call(headers: dict[str, str]):
    return invoke("make_call", request("POST", f"{ORIGIN}/api/make_call", headers=headers,
                                       json_body={"to": unique.number()}))


USERS = [
    pytest.param("aad", "{}-4b1d-4c2e-9f3a-0123456789ab", id="entra-guid"),
    pytest.param("google", "1{}", id="google-digits"),
    pytest.param("apple", "001234.{}.0917", id="apple-dotted"),
    pytest.param("github", "b:{}", id="colon-in-the-id"),
    pytest.param("twitter", "under_score%2F{}~", id="escapes"),
]


@pytest.mark.parametrize(("provider", "shape"), USERS)
def test_every_identity_voice_token_issues_calls_as_that_user(provider, shape, monkeypatch):
    monkeypatch.setenv("RATE_LIMIT_CALLS_PER_CALLER", "1")
    user = signed_in(shape.format(secrets.token_hex(4)), provider)
    identity = token_identity(user)
    to = unique.number()
    assert dialed(call_from(identity, to)) == to
    # The same user's calls: their make_call is now over the limit voice counted against.
    document = refused(make_call(user), 429, "rate-limited")
    assert document["limit"] == "call-per-caller"


@pytest.mark.parametrize("easy_auth", ["True", "False"])
def test_the_single_user_identity_calls_while_voice_token_issues_it(easy_auth, monkeypatch):
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", easy_auth)
    solo = f"solo_{secrets.token_hex(4)}"
    monkeypatch.setenv("VOICE_SINGLE_USER_IDENTITY", solo)
    assert token_identity({}) == solo
    to = unique.number()
    assert dialed(call_from(solo, to)) == to
    monkeypatch.setenv("REQUIRE_SIGNED_IN_USER", "true")
    refused(ask_token({}), 401, "sign-in-required")
    assert_refused(call_from(solo), "cannot be placed")


def test_a_users_identity_calls_only_while_easy_auth_is_on(monkeypatch):
    user = signed_in(f"dana-{secrets.token_hex(4)}")
    identity = token_identity(user)
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "False")  # the headers are anyone's now
    refused(ask_token(user), 401, "sign-in-required")
    assert_refused(call_from(identity), "cannot be placed")


def test_spellings_voice_token_never_writes_are_refused_and_count_for_nobody(monkeypatch):
    monkeypatch.setenv("RATE_LIMIT_CALLS_PER_CALLER", "1")
    user_id = f"erin-{secrets.token_hex(4)}"
    identity = token_identity(signed_in(user_id, "aad"))
    assert token_identity(signed_in(user_id, "AAD")) == identity  # the provider, lower-cased
    upper_provider = identity.replace("user_3aaad_3a", "user_3aAAD_3a", 1)
    upper_hex = identity.replace("_3a", "_3A")
    for spelling in (upper_provider, upper_hex, f"{identity}_"):
        assert_refused(call_from(spelling), "cannot be placed")
    assert verbs(call_from(identity))[0].tag == "Dial"  # the one bucket is still whole


def test_an_identity_whose_user_the_app_would_refuse_is_refused():
    for principal in ("user_3aaad_3a_20bob",  # a space: no user ID Easy Auth sends
                      "user_3aaad_3a",  # no ID at all
                      "user_3a_3abob"):  # no provider
        assert_refused(call_from(principal), "cannot be placed")


def test_client_to_client_rings_only_identities_voice_token_issues(monkeypatch):
    monkeypatch.setenv("VOICE_ALLOW_CLIENT_TO_CLIENT", "true")
    alice = token_identity(signed_in(f"alice-{secrets.token_hex(4)}"))
    bob = token_identity(signed_in(f"bob-{secrets.token_hex(4)}"))
    assert dialed(call_from(alice, f"client:{bob}")) == bob
    stranger = bob.replace("user_3aaad_3a", "user_3aAAD_3a", 1)
    assert_refused(call_from(alice, f"client:{stranger}"), "cannot be placed")
    assert_refused(call_from(alice, "client:mallory"), "cannot be placed")


def test_two_users_never_share_an_identity(monkeypatch):
    """Provider ``a:b`` with user ``c``, and provider ``a`` with user ``b:c``: two users,
    two identities, each calling as itself."""
    monkeypatch.setenv("RATE_LIMIT_CALLS_PER_CALLER", "1")
    tail = secrets.token_hex(4)
    first, second = signed_in(tail, f"corp:{tail}"), signed_in(f"{tail}:{tail}", "corp")
    identities = [token_identity(first), token_identity(second)]
    assert identities[0] != identities[1]
    assert verbs(call_from(identities[0]))[0].tag == "Dial"
    assert refused(make_call(first), 429, "rate-limited")["limit"] == "call-per-caller"
    assert verbs(call_from(identities[1]))[0].tag == "Dial"  # a bucket of its own
    assert refused(make_call(second), 429, "rate-limited")["limit"] == "call-per-caller"
