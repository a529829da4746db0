"""Who is asking: Easy Auth's headers, trusted only when Azure says authentication is on."""

from __future__ import annotations

import base64
import json

import pytest
from harness import APP_URL, invoke, problem, request

from devhost import easy_auth
from shared.identity import ANONYMOUS, Caller, read_caller
from shared.problems import Problem
from shared.settings import load_settings

BASE = {"TWILIO_ACCOUNT_SID": "AC" + "a1" * 16, "TWILIO_AUTH_TOKEN": "token"}
ALICE = easy_auth.principal_headers("alice")


def caller(headers: dict[str, str], **settings: str) -> Caller:
    return read_caller(request("GET", f"{APP_URL}/status/x", headers=headers),
                       load_settings({**BASE, **settings}))


def test_without_easy_auth_principal_headers_are_ignored():
    assert caller(ALICE) == ANONYMOUS
    assert caller(ALICE, WEBSITE_AUTH_ENABLED="False") == ANONYMOUS
    assert ANONYMOUS.owner == "anonymous" and not ANONYMOUS.signed_in


def test_with_easy_auth_the_principal_is_the_caller():
    signed_in = caller(ALICE, WEBSITE_AUTH_ENABLED="True")
    assert signed_in == Caller("alice", "dev", "alice")
    assert signed_in.owner == "user:dev:alice"
    assert caller({}, WEBSITE_AUTH_ENABLED="True") == ANONYMOUS


def test_the_provider_comes_from_the_principal_when_its_header_is_missing():
    principal = base64.b64encode(json.dumps({"auth_typ": "aad", "claims": []}).encode()).decode()
    found = caller({"X-MS-CLIENT-PRINCIPAL-ID": "0f8f", "X-MS-CLIENT-PRINCIPAL": principal},
                   WEBSITE_AUTH_ENABLED="True")
    assert found.owner == "user:aad:0f8f"
    with pytest.raises(Problem) as unreadable:  # no provider: it cannot be told apart
        caller({"X-MS-CLIENT-PRINCIPAL-ID": "0f8f", "X-MS-CLIENT-PRINCIPAL": "%%%"},
               WEBSITE_AUTH_ENABLED="True")
    assert unreadable.value.status == 401


def test_a_user_id_that_no_provider_writes_is_refused_not_anonymous():
    with pytest.raises(Problem) as refused:
        caller({"X-MS-CLIENT-PRINCIPAL-ID": "a b\n"}, WEBSITE_AUTH_ENABLED="True")
    assert (refused.value.status, refused.value.type) == (
        401, "urn:twilio-functions:problem:sign-in-required")


def test_required_sign_in_refuses_the_anonymous_caller():
    with pytest.raises(Problem) as refused:
        caller(ALICE, REQUIRE_SIGNED_IN_USER="true")  # headers, but no Easy Auth to trust
    assert (refused.value.status, refused.value.type) == (
        401, "urn:twilio-functions:problem:sign-in-required")
    assert caller(ALICE, REQUIRE_SIGNED_IN_USER="true", WEBSITE_AUTH_ENABLED="True").signed_in


@pytest.mark.parametrize("function", ["send_sms", "make_call"])
def test_the_outgoing_functions_refuse_before_sending(app_env, monkeypatch, function):
    monkeypatch.setenv("REQUIRE_SIGNED_IN_USER", "true")
    response = invoke(function, request("POST", f"{APP_URL}/{function}",
                                        json_body={"to": "+14155552671", "body": "x"},
                                        headers=ALICE))
    assert response.status_code == 401
    assert problem(response)["type"].endswith(":sign-in-required")
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert app_env.messages == [] and app_env.calls == []


def test_the_local_front_end_strips_and_injects_like_azure():
    from aiohttp.test_utils import make_mocked_request

    forged = make_mocked_request("GET", "/api/status/x", headers={
        "X-MS-CLIENT-PRINCIPAL-ID": "mallory", "x-ms-client-principal-name": "mallory"})
    fronted = easy_auth.front(forged)
    assert not any(name.lower().startswith("x-ms-client-principal") for name in fronted.headers)

    signed = easy_auth.front(make_mocked_request("GET", "/", headers={
        "Authorization": "Bearer dev:alice", "X-MS-CLIENT-PRINCIPAL-ID": "mallory"}))
    assert signed.headers["X-MS-CLIENT-PRINCIPAL-ID"] == "alice"
    principal = json.loads(base64.b64decode(signed.headers["X-MS-CLIENT-PRINCIPAL"]))
    assert principal["auth_typ"] == "dev"

    for token in ("Bearer eyJhbGciOi", "Bearer dev:", "Bearer dev:a b"):
        refused = easy_auth.front(make_mocked_request("GET", "/", headers={
            "Authorization": token}))
        assert refused.status == 401 and "invalid_token" in refused.headers["WWW-Authenticate"]
