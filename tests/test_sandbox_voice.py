"""The sandbox checks Voice SDK tokens as Twilio does, with Twilio's error codes."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp import web
from harness import ACCOUNT_SID, API_KEY_SECRET, API_KEY_SID, AUTH_TOKEN
from stub_server import serve
from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import VoiceGrant

from twilio_sandbox import TwilioSandbox
from twilio_sandbox.twiml_app import TwimlApp
from twilio_sandbox.voice_sdk import TokenRefused, shown, verify_token

APP_SID = "AP" + "c3" * 16
OTHER_ACCOUNT = "AC" + "f0" * 16
OTHER_KEY = "SK" + "f1" * 16
pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")


@pytest.fixture
def sandbox() -> TwilioSandbox:
    """Not started: verifying a token needs only the accounts, keys and TwiML Apps."""
    sandbox = TwilioSandbox(accounts={ACCOUNT_SID: AUTH_TOKEN, OTHER_ACCOUNT: "other-token"},
                            api_keys={API_KEY_SID: (API_KEY_SECRET, ACCOUNT_SID),
                                      OTHER_KEY: ("other-s3cr3t", OTHER_ACCOUNT)})
    sandbox.add_twiml_app(TwimlApp(APP_SID, ACCOUNT_SID, "http://localhost/api/voice"))
    return sandbox


def token(*, key: str = API_KEY_SID, secret: str = API_KEY_SECRET, account: str = ACCOUNT_SID,
          app: str = APP_SID, ttl: int = 3600, nbf: int | None = None,
          identity: str | None = "alice") -> str:
    issued = int(time.time()) if nbf is None else nbf
    grant = VoiceGrant(incoming_allow=True, outgoing_application_sid=app)
    return AccessToken(account, key, secret, grants=[grant], identity=identity, nbf=issued,
                       valid_until=issued + ttl).to_jwt()


def refused(sandbox: TwilioSandbox, value: object) -> int:
    with pytest.raises(TokenRefused) as raised:
        verify_token(sandbox, value)
    assert raised.value.status == 401
    return raised.value.code  # type: ignore[return-value]


def test_a_good_token_grants_its_identity_and_app(sandbox):
    grant = verify_token(sandbox, token())
    assert (grant.account_sid, grant.identity, grant.application_sid) == (
        ACCOUNT_SID, "alice", APP_SID)


def test_malformed_tokens_are_20101(sandbox):
    assert refused(sandbox, "not.a.jwt") == 20101
    assert refused(sandbox, "") == 20101
    assert refused(sandbox, None) == 20101


def test_a_token_without_twilios_content_type_is_20102(sandbox):
    plain = jwt.encode({"iss": API_KEY_SID, "sub": ACCOUNT_SID, "exp": int(time.time()) + 60,
                        "grants": {"identity": "alice"}}, API_KEY_SECRET, algorithm="HS256")
    assert refused(sandbox, plain) == 20102


@pytest.mark.parametrize("kind", ["unknown key", "other account's key", "auth token"])
def test_a_wrong_issuer_or_subject_is_20103(sandbox, kind):
    if kind == "unknown key":
        value = token(key="SK" + "00" * 16)
    elif kind == "other account's key":
        value = token(key=OTHER_KEY, secret="other-s3cr3t")
    else:  # signed by the account itself: Twilio takes only API keys
        value = token(key=ACCOUNT_SID, secret=AUTH_TOKEN)
    assert refused(sandbox, value) == 20103


def test_a_forged_signature_is_20107(sandbox):
    assert refused(sandbox, token(secret="guessed-s3cr3t")) == 20107


def test_an_expired_token_is_20104(sandbox):
    assert refused(sandbox, token(nbf=int(time.time()) - 7200, ttl=3600)) == 20104


def test_a_token_valid_over_24_hours_is_20157(sandbox):
    assert refused(sandbox, token(ttl=86401)) == 20157
    verify_token(sandbox, token(ttl=86400))


def test_a_token_without_identity_or_for_an_unknown_app_is_refused(sandbox):
    assert refused(sandbox, token(identity=None)) == 20106
    assert refused(sandbox, token(app="AP" + "00" * 16)) == 21218


def test_numbers_are_shown_masked():
    assert shown("+14155552671") == "+1415•••2671"
    assert shown(None) == "(none)"


# --- a call placed with a token ------------------------------------------------------------


DIAL = ('<Response><Dial answerOnBridge="true" callerId="+15005550006">'
        "<Number>+14155552671</Number></Dial></Response>")
DIAL_REPORTING = ('<Response><Dial answerOnBridge="true" callerId="+15005550006"><Number '
                  'statusCallbackEvent="initiated ringing answered completed" '
                  'statusCallback="/leg">+14155552671</Number></Dial></Response>')


class VoiceApp:
    """The app's TwiML App URLs, as far as the sandbox can tell: voice, its status callback,
    and where a dialed leg reports."""

    def __init__(self, document: str) -> None:
        self.document = document
        self.reports: dict[str, list[dict[str, str]]] = {"/status": [], "/leg": []}

    async def voice(self, request: web.Request) -> web.Response:
        return web.Response(text=self.document, content_type="text/xml")

    async def report(self, request: web.Request) -> web.Response:
        self.reports[request.path].append({k: v for k, v in (await request.post()).items()
                                           if isinstance(v, str)})
        return web.Response(status=204)

    def client_call(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The call the SDK places to +14155552671 with a good token, and the sandbox's calls."""

        async def main() -> tuple[dict[str, Any], list[dict[str, Any]]]:
            web_app = web.Application()
            web_app.router.add_post("/voice", self.voice)
            for path in self.reports:
                web_app.router.add_post(path, self.report)
            runner, base = await serve(web_app)
            try:
                async with TwilioSandbox(accounts={ACCOUNT_SID: AUTH_TOKEN},
                                         api_keys={API_KEY_SID: (API_KEY_SECRET, ACCOUNT_SID)}
                                         ) as sandbox, aiohttp.ClientSession() as session:
                    sandbox.add_twiml_app(TwimlApp(APP_SID, ACCOUNT_SID, f"{base}/voice",
                                                   f"{base}/status"))
                    async with session.post(f"{sandbox.base_url}/_sandbox/client_calls",
                                            json={"token": token(), "to": "+14155552671"}
                                            ) as answer:
                        assert answer.status == 200, await answer.text()
                        return await answer.json(), [dict(call) for call in sandbox.calls]
            finally:
                await runner.cleanup()

        return asyncio.run(main())


def test_a_voice_sdk_call_rings_is_answered_and_reports_its_end_to_the_twiml_app() -> None:
    """Twilio reports a TwiML App's calls to its StatusCallback, which asks for no events:
    so ``completed`` only (the voice webhook saw it ringing)."""
    app = VoiceApp(DIAL)
    call, calls = app.client_call()
    assert [step["status"] for step in call["steps"]] == ["ringing", "in-progress", "completed"]
    assert (call["direction"], call["from"]) == ("inbound", "client:alice")
    [report] = app.reports["/status"]
    assert (report["CallSid"], report["CallStatus"], report["Direction"]) == (
        call["sid"], "completed", "inbound")
    assert report["From"] == "client:alice" and int(report["CallDuration"]) >= 1
    assert "ParentCallSid" not in report
    assert [c["sid"] for c in calls] == [call["sid"]]  # no leg: nobody asked for its reports


def test_a_dialed_number_with_a_status_callback_reports_its_leg_with_its_parent() -> None:
    """The way an app hears a Voice SDK call answered: the <Number>'s own statusCallback."""
    app = VoiceApp(DIAL_REPORTING)
    call, calls = app.client_call()
    parent, leg = calls
    assert parent["sid"] == call["sid"]
    assert (leg["direction"], leg["parent_call_sid"], leg["to"], leg["from"]) == (
        "outbound-dial", call["sid"], "+14155552671", "+15005550006")
    reports = app.reports["/leg"]
    assert [r["CallStatus"] for r in reports] == ["initiated", "ringing", "in-progress",
                                                  "completed"]
    assert {(r["CallSid"], r["ParentCallSid"], r["Direction"]) for r in reports} == {
        (leg["sid"], call["sid"], "outbound-dial")}
    assert [r["SequenceNumber"] for r in reports] == ["0", "1", "2", "3"]
    [end] = app.reports["/status"]  # the SDK call's own end, after its leg's
    assert (end["CallSid"], end["CallStatus"]) == (call["sid"], "completed")
