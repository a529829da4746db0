"""Every identity Easy Auth can name is its own, fits the store's keys, and is never
taken for the anonymous caller.

With Easy Auth on, a principal ID the app cannot key on (empty, over 256
characters, not printable ASCII) used to be read as the shared anonymous
caller: it read the anonymous SIDs and threads, and they read its. It is
refused (401). Owners long or heavily escaped made keys over Table Storage's
1 KiB (the message was sent but not kept), and provider ``a:b`` with user ``c``
was the same owner as provider ``a`` with user ``b:c``. Keys are now hashed
from an owner no two identities share.

The functions run in-process against the loopback Twilio sandbox (the real
``twilio`` library over HTTP) and the session's Azurite, with Easy Auth's
headers trusted as on Azure.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
from urllib.parse import quote

import azure.functions as func
import pytest
import unique
from deployed import ORIGIN, deployed
from harness import created, invoke, refused, request
from storage import shared_azurite

from shared.identity import PRINCIPAL, PRINCIPAL_ID, PRINCIPAL_IDP, read_caller
from shared.problems import Problem
from shared.settings import load_settings

#: The most a principal may be: 256 characters of ID and of provider, each the
#: characters keys forbid or percent-encoding triples.
LONGEST_ID = ("/\\#?%|:" * 37)[:256]
LONGEST_PROVIDER = (":%/\\#?|" * 37)[:256]


@pytest.fixture(autouse=True)
def on_azure(app_env, monkeypatch):
    """Deployed with Easy Auth on and the store on the session's Azurite."""
    with deployed(app_env, monkeypatch, shared_azurite().connection_string,
                  WEBSITE_AUTH_ENABLED="True") as env:
        yield env


def principal(user_id: str, provider: str | None = "aad") -> dict[str, str]:
    return {PRINCIPAL_ID: user_id, **({PRINCIPAL_IDP: provider} if provider else {})}


def send(headers: dict[str, str], to: str, body: str) -> str:
    return created(invoke("send_sms", request(
        "POST", f"{ORIGIN}/api/send_sms", json_body={"to": to, "body": body},
        headers=headers)))["sid"]


def status(sid: str, headers: dict[str, str]) -> func.HttpResponse:
    return invoke("status", func.HttpRequest("GET", f"{ORIGIN}/api/status/{sid}", body=b"",
                                             headers=headers, route_params={"sid": sid}))


def thread(remote: str, headers: dict[str, str]) -> func.HttpResponse:
    return invoke("conversations", func.HttpRequest(
        "GET", f"{ORIGIN}/api/conversations/{quote(remote)}", body=b"", headers=headers,
        route_params={"number": remote}))


def bodies(response: func.HttpResponse) -> list[str]:
    assert response.status_code == 200, response.get_body()
    return [message["body"] for message in json.loads(response.get_body())["items"]]


# --- 3: a principal the app cannot key on is refused, never anonymous -----------------


@pytest.mark.parametrize("user_id", ["", "x" * 257, "a b", "caf\u00e9", "tab\there"])
def test_a_principal_id_the_app_cannot_key_on_is_refused(user_id):
    settings = load_settings()
    with pytest.raises(Problem) as refusal:
        read_caller(request("GET", f"{ORIGIN}/api/status/x", headers=principal(user_id)),
                    settings)
    assert (refusal.value.status, refusal.value.type) == (
        401, "urn:twilio-functions:problem:sign-in-required")
    assert refusal.value.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


@pytest.mark.parametrize("headers", [
    principal("0f8f", provider="a b"),
    principal("0f8f", provider="x" * 257),
    principal("0f8f", provider=None),  # and no X-MS-CLIENT-PRINCIPAL to read it from
    {**principal("0f8f", provider=None), PRINCIPAL: "%%%"},
    {**principal("0f8f", provider=None),
     PRINCIPAL: base64.b64encode(json.dumps({"auth_typ": 7}).encode()).decode()},
])
def test_a_principal_without_a_provider_to_key_it_by_is_refused(headers):
    with pytest.raises(Problem) as refusal:
        read_caller(request("GET", f"{ORIGIN}/api/status/x", headers=headers), load_settings())
    assert refusal.value.status == 401


def test_an_unusable_principal_reads_nothing_of_the_anonymous_callers():
    """Easy Auth on, sign-in not required: anonymous callers send, and a principal whose
    ID is empty must not be one of them."""
    remote = unique.number()
    sid = send({}, remote, "sent anonymously")
    assert status(sid, {}).status_code == 200
    for user_id in ("", "x" * 257):
        refused(status(sid, principal(user_id)), 401, "sign-in-required")
        refused(thread(remote, principal(user_id)), 401, "sign-in-required")
        answer = invoke("send_sms", request(
            "POST", f"{ORIGIN}/api/send_sms", json_body={"to": remote, "body": "as nobody"},
            headers=principal(user_id)))
        refused(answer, 401, "sign-in-required")
    assert bodies(thread(remote, {})) == ["sent anonymously"]


def test_the_longest_principal_id_is_a_user():
    assert read_caller(request("GET", f"{ORIGIN}/api/status/x",
                               headers=principal("x" * 256)), load_settings()).signed_in


# --- 4: every identity fits the keys, and no two share them ----------------------------


def test_the_longest_most_escaped_identity_is_kept_and_read_back(caplog):
    caplog.set_level(logging.ERROR, logger="twilio_functions")
    longest = principal(LONGEST_ID, LONGEST_PROVIDER)
    remote = unique.number()
    sid = send(longest, remote, "kept whatever the key")
    assert "store=unavailable" not in caplog.text
    assert status(sid, longest).status_code == 200
    assert bodies(thread(remote, longest)) == ["kept whatever the key"]
    listed = invoke("conversations", func.HttpRequest(
        "GET", f"{ORIGIN}/api/conversations", body=b"", headers=longest))
    assert [c["number"] for c in json.loads(listed.get_body())["conversations"]] == [remote]


def test_identities_that_once_made_one_owner_read_their_own_data_only():
    tag = secrets.token_hex(4)  # the session's Azurite keeps every test's users
    first = principal("c", f"t{tag}:b")  # provider a:b, user c
    second = principal("b:c", f"t{tag}")  # provider a, user b:c
    remote = unique.number()
    first_sid = send(first, remote, "from the first")
    second_sid = send(second, remote, "from the second")

    assert bodies(thread(remote, first)) == ["from the first"]
    assert bodies(thread(remote, second)) == ["from the second"]
    assert status(first_sid, first).status_code == status(second_sid, second).status_code == 200
    refused(status(second_sid, first), 404, "not-found")
    refused(status(first_sid, second), 404, "not-found")
