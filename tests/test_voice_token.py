"""voice_token: Voice SDK access tokens, decoded with PyJWT as Twilio checks them."""

from __future__ import annotations

import json
import secrets
import time

import jwt
import pytest
from harness import ACCOUNT_SID, API_KEY_SECRET, API_KEY_SID, invoke, problem, request
from live import ROOMY_LIMITS
from storage import storage_env

from shared.client_identity import caller_of
from shared.settings import load_settings

URL = "http://localhost:7071/api/voice_token"
APP_SID = "AP" + "c3" * 16
PUSH_SID = "CR" + "e5" * 16
# The harness's fake API key secret is shorter than Twilio's 32 characters.
pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")


@pytest.fixture
def voice_env(app_env, monkeypatch):
    """A deployment with an API key and a TwiML App, behind App Service Authentication."""
    for name, value in {"TWILIO_API_KEY_SID": API_KEY_SID, "TWILIO_API_KEY_SECRET": API_KEY_SECRET,
                        "TWILIO_TWIML_APP_SID": APP_SID, "WEBSITE_AUTH_ENABLED": "True",
                        **storage_env(), **ROOMY_LIMITS}.items():
        monkeypatch.setenv(name, value)
    return app_env


def signed_in(user: str, provider: str = "aad") -> dict[str, str]:
    """The headers Azure's front end adds for a signed-in user."""
    return {"X-MS-CLIENT-PRINCIPAL-ID": user, "X-MS-CLIENT-PRINCIPAL-IDP": provider}


def new_user() -> str:
    return f"{secrets.token_hex(4)}-4b1d-4c2e-9f3a-{secrets.token_hex(6)}"


def ask(headers=None, *, body=None, url=URL):
    return invoke("voice_token", request("POST", url, json_body=body, headers=headers))


def issued(response) -> tuple[dict, dict, dict]:
    """The answer, the token's header and its claims (signature checked with the secret)."""
    assert response.status_code == 200, response.get_body()
    assert response.headers.get("Cache-Control") == "no-store"
    answer = json.loads(response.get_body())
    assert set(answer) == {"token", "identity", "expires_at"}
    header = jwt.get_unverified_header(answer["token"])
    claims = jwt.decode(answer["token"], API_KEY_SECRET, algorithms=["HS256"],
                        options={"require": ["iss", "sub", "exp", "nbf", "jti"]})
    return answer, header, claims


def test_a_token_is_what_twilio_accepts(voice_env):
    before = int(time.time())
    answer, header, claims = issued(ask(signed_in(new_user())))
    assert header == {"alg": "HS256", "cty": "twilio-fpa;v=1", "typ": "JWT"}
    assert (claims["iss"], claims["sub"]) == (API_KEY_SID, ACCOUNT_SID)
    assert claims["jti"].startswith(f"{API_KEY_SID}-")
    assert claims["grants"]["identity"] == answer["identity"]
    assert claims["grants"]["voice"] == {"incoming": {"allow": True},
                                         "outgoing": {"application_sid": APP_SID}}
    assert before <= claims["nbf"] <= int(time.time())
    assert claims["exp"] - claims["nbf"] == 3600
    assert answer["expires_at"] == time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                 time.gmtime(claims["exp"]))


def test_a_token_signed_with_anything_else_does_not_verify(voice_env):
    answer, _, _ = issued(ask(signed_in(new_user())))
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(answer["token"], "fake-auth-token-s3cr3t-0001", algorithms=["HS256"])


def test_the_push_credential_goes_into_the_grant_when_set(voice_env, monkeypatch):
    monkeypatch.setenv("TWILIO_PUSH_CREDENTIAL_SID", PUSH_SID)
    _, _, claims = issued(ask(signed_in(new_user())))
    assert claims["grants"]["voice"]["push_credential_sid"] == PUSH_SID


@pytest.mark.parametrize("ttl", ["60", "86400"])
def test_the_ttl_is_the_setting(voice_env, monkeypatch, ttl):
    monkeypatch.setenv("VOICE_TOKEN_TTL_SECONDS", ttl)
    _, _, claims = issued(ask(signed_in(new_user())))
    assert claims["exp"] - claims["nbf"] == int(ttl)


@pytest.mark.parametrize("ttl", ["59", "86401", "1h", "-5"])
def test_a_ttl_beyond_twilios_bounds_is_a_misconfiguration(voice_env, monkeypatch, ttl):
    monkeypatch.setenv("VOICE_TOKEN_TTL_SECONDS", ttl)
    document = problem(ask(signed_in(new_user())))
    assert (document["status"], document["setting"]) == (500, "VOICE_TOKEN_TTL_SECONDS")
    assert ttl not in document["detail"]


@pytest.mark.parametrize("missing", ["TWILIO_API_KEY_SID", "TWILIO_TWIML_APP_SID"])
def test_without_an_api_key_or_a_twiml_app_the_answer_names_it(voice_env, monkeypatch, missing):
    monkeypatch.delenv(missing)
    if missing == "TWILIO_API_KEY_SID":
        monkeypatch.delenv("TWILIO_API_KEY_SECRET")
    document = problem(ask(signed_in(new_user())))
    assert document["type"].endswith(":misconfigured")
    assert (document["status"], document["setting"]) == (500, missing)


def test_the_identity_is_the_signed_in_user(voice_env):
    user = new_user()
    answer, _, claims = issued(ask(signed_in(user, "aad")))
    identity = answer["identity"]
    assert claims["grants"]["identity"] == identity
    assert identity.startswith("user_3aaad_3a") and len(identity) <= 121
    assert identity.replace("_", "").isalnum()
    settings = load_settings()
    assert caller_of(identity, settings).owner == f"user:aad:{user}"
    other, _, _ = issued(ask(signed_in(user, "google")))
    assert other["identity"] != identity  # IDs are unique per provider only


def test_the_identity_is_never_taken_from_the_request(voice_env):
    user = new_user()
    answer, _, claims = issued(ask(signed_in(user), url=f"{URL}?identity=bob"))
    assert claims["grants"]["identity"] == answer["identity"] != "bob"
    document = problem(ask(signed_in(user), body={"identity": "bob"}))
    assert (document["status"], document["field"]) == (400, "identity")


def test_without_a_signed_in_user_the_single_user_identity_or_401(voice_env, monkeypatch):
    document = problem(ask())
    assert document["status"] == 401 and document["type"].endswith(":sign-in-required")
    monkeypatch.setenv("VOICE_SINGLE_USER_IDENTITY", f"solo_{secrets.token_hex(4)}")
    answer, _, _ = issued(ask())
    assert answer["identity"].startswith("solo_")
    monkeypatch.setenv("REQUIRE_SIGNED_IN_USER", "true")
    assert problem(ask())["status"] == 401


def test_a_forged_principal_without_easy_auth_changes_nothing(voice_env, monkeypatch):
    monkeypatch.delenv("WEBSITE_AUTH_ENABLED")
    forged = signed_in(new_user())
    assert problem(ask(forged))["status"] == 401
    monkeypatch.setenv("VOICE_SINGLE_USER_IDENTITY", "solo")
    answer, _, claims = issued(ask(forged))
    assert answer["identity"] == claims["grants"]["identity"] == "solo"


def test_a_single_user_identity_cannot_pose_as_a_signed_in_user():
    base = {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": "t"}
    with pytest.raises(Exception, match="VOICE_SINGLE_USER_IDENTITY"):
        load_settings({**base, "VOICE_SINGLE_USER_IDENTITY": "user_3aaad_3aeve"})
    with pytest.raises(Exception, match="VOICE_SINGLE_USER_IDENTITY"):
        load_settings({**base, "VOICE_SINGLE_USER_IDENTITY": "bob smith"})


def test_tokens_are_limited_per_user(voice_env, monkeypatch):
    monkeypatch.setenv("RATE_LIMIT_VOICE_TOKENS_PER_CALLER", "2")
    alice, bob = signed_in(new_user()), signed_in(new_user())
    issued(ask(alice))
    issued(ask(alice))
    refused = ask(alice)
    document = problem(refused)
    assert (document["status"], document["limit"]) == (429, "voice-token-per-caller")
    retry_after = int(refused.headers["Retry-After"])
    assert 1 <= retry_after <= 3600
    assert refused.headers["RateLimit-Policy"] == '"voice-token-per-caller";q=2;w=3600'
    assert refused.headers["RateLimit"] == f'"voice-token-per-caller";r=0;t={retry_after}'
    issued(ask(bob))  # another user is unaffected


def test_only_post_is_answered(voice_env):
    response = invoke("voice_token", request("GET", URL, headers=signed_in(new_user())))
    assert problem(response)["status"] == 405
