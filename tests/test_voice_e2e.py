"""In-app calling end to end: `make run`'s pieces (host, sandbox, Azurite) over HTTP.

The mobile app gets a token from ``voice_token``; the sandbox plays its Voice
SDK (``/_sandbox/client_calls``): checks the token, fetches the TwiML App's
Voice URL (``voice``) signed, carries out the TwiML and reports the call's end
to ``status_callback``, which keeps it for ``status``.
"""

from __future__ import annotations

import secrets
import urllib.error
from collections.abc import Iterator

import pytest
import unique
from harness import ACCOUNT_SID, AUTH_TOKEN
from live import LiveApp
from test_delivery_e2e import http, wait_for_status

ALLOWED = "+14155552671"


def start(*args: str, **settings: str) -> LiveApp:
    env = {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
           "ALLOWED_COUNTRIES": "US,CA",
           "VOICE_SINGLE_USER_IDENTITY": f"dev_{secrets.token_hex(6)}", **settings}
    return LiveApp(env, args=("--sandbox", *args))


@pytest.fixture(scope="module")
def app() -> Iterator[LiveApp]:
    running = start()
    yield running
    assert running.stop() == 0


def new_token(app: LiveApp, headers: dict[str, str] | None = None) -> str:
    status, answer, _ = http("POST", f"{app.base_url}/api/voice_token", headers=headers)
    assert status == 200, answer
    return answer["token"]


def client_call(app: LiveApp, to: str, token: str | None = None) -> dict:
    body = {"token": token or new_token(app), "to": to}
    try:
        return app.sandbox("POST", "/_sandbox/client_calls", body)
    except urllib.error.HTTPError as error:
        raise AssertionError(error.read()) from None


def test_a_client_call_to_an_allowed_number_is_dialed_and_tracked(app):
    call = client_call(app, ALLOWED)
    assert call["actions"] == ["dialed +1415•••2671 with caller ID +1500•••0006"]
    assert call["from"].startswith("client:dev_") and call["status"] == "completed"
    view = wait_for_status(app, call["sid"], "completed")
    assert view["to"] == ALLOWED and view["kind"] == "call"


def test_a_client_calls_history_shows_the_dialed_leg_answered(app):
    """A TwiML App's status callback hears only the call's end; the leg <Dial> places
    reports its steps, which the app files under the call (ParentCallSid)."""
    call = client_call(app, ALLOWED)
    view = wait_for_status(app, call["sid"], "completed")
    steps = [step["status"] for step in view["history"]]
    assert steps == ["ringing", "in-progress", "completed"], steps


@pytest.mark.parametrize("to", ["+19004444444", "+447911123456"])
def test_a_premium_or_disallowed_number_is_refused_aloud(app, to):
    call = client_call(app, to)
    assert call["actions"] == ["said: This app cannot call that number. Goodbye.", "hung up"]
    assert "refused" in app.log() and to not in app.log()


def test_client_to_client_is_refused_unless_enabled(app):
    call = client_call(app, "client:bob")
    assert call["actions"] == ["said: Calls between app users are not enabled. Goodbye.",
                               "hung up"]


def test_client_to_client_when_enabled():
    """To another app user: an identity voice_token issues (bob's), never any other."""
    enabled = start("--auth", VOICE_ALLOW_CLIENT_TO_CLIENT="true")
    try:
        users = [{"Authorization": f"Bearer dev:{name}-{secrets.token_hex(4)}"}
                 for name in ("alice", "bob")]
        status, bob, _ = http("POST", f"{enabled.base_url}/api/voice_token", headers=users[1])
        assert status == 200, bob
        alice = new_token(enabled, users[0])
        rang = client_call(enabled, f"client:{bob['identity']}", alice)
        assert rang["actions"] == [f"rang client {bob['identity']}"]
        assert client_call(enabled, "client:bob", alice)["actions"] == [
            "said: This call cannot be placed from this app. Goodbye.", "hung up"]
    finally:
        assert enabled.stop() == 0


def test_calls_over_the_limit_are_refused():
    # A signed-in user of its own: without sign-in every app user is the one
    # anonymous caller, whose calls every other test counts in the shared Azurite.
    limited = start("--auth", RATE_LIMIT_CALLS_PER_CALLER="1")
    try:
        token = new_token(limited, {"Authorization": f"Bearer dev:{secrets.token_hex(6)}"})
        assert client_call(limited, ALLOWED, token)["actions"][0].startswith("dialed")
        refused = client_call(limited, ALLOWED, token)
        assert refused["actions"][0].startswith("said: You have placed too many calls")
    finally:
        assert limited.stop() == 0


def test_a_bad_token_is_refused_with_twilios_code(app):
    token = new_token(app)
    head, payload, signature = token.split(".")
    forged = f"{head}.{payload}.{signature[:-4]}AAAA"
    with pytest.raises(urllib.error.HTTPError) as raised:
        app.sandbox("POST", "/_sandbox/client_calls", {"token": forged, "to": ALLOWED})
    assert raised.value.code == 401
    assert b'"code": 20107' in raised.value.read()


def test_a_call_to_the_twilio_number_rings_the_incoming_identity(app):
    [twiml_app] = app.state()["twiml_apps"]
    outcome = app.sandbox("POST", "/_sandbox/inbound/call",
                          {"from": unique.number(), "application_sid": twiml_app["sid"]})
    # Answered, the call is kept (call_events) and its <Dial> action hangs up.
    assert outcome["call"]["actions"] == [f"rang client {outcome_identity(app)}", "hung up"]


def outcome_identity(app: LiveApp) -> str:
    status, answer, _ = http("POST", f"{app.base_url}/api/voice_token")
    assert status == 200
    return answer["identity"]


def test_an_unsigned_voice_request_is_refused(app):
    status, answer, _ = http("POST", f"{app.base_url}/api/voice",
                             form={"CallSid": "CA" + "d4" * 16, "AccountSid": ACCOUNT_SID,
                                   "From": "client:x", "To": ALLOWED})
    assert status == 403 and answer["type"].endswith(":invalid-signature")
