"""The sandbox's calls as Twilio's, row by row (issue 19's call rows: 4, 5, 11 to 16).

Each test names the Twilio page or OpenAPI path (Twilio's ``twilio_api_v2010.json``)
it holds the sandbox, or the app, to. The sandbox runs in-process on loopback and is
driven through twilio-python; "the app" is a stand-in on loopback that checks Twilio's
signature and records what it is asked.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st
from test_twilio_sandbox import (
    ACCOUNT_PATH,
    ACCOUNT_SID,
    AUTH_TOKEN,
    CUSTOMER,
    KEY_SECRET,
    KEY_SID,
    STRANGER,
    auth_headers,
    in_thread,
    refused,
    run,
    twilio,
)
from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import VoiceGrant
from twilio.request_validator import RequestValidator

from shared.client_identity import identity_for
from shared.identity import Caller
from shared.problems import Problem
from shared.settings import CLIENT_IDENTITY, load_settings
from shared.twiml import voice_document
from twilio_sandbox import VALID_FROM, TwilioSandbox, callbacks, voice_sdk
from twilio_sandbox.twiml_app import TwimlApp
from twilio_sandbox.voice_sdk import TokenRefused, verify_token

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")

SAY = '<?xml version="1.0" encoding="UTF-8"?><Response><Say voice="woman">{}</Say></Response>'
TWIML_TYPE = "text/xml"
#: What the callee hears from Twilio itself when it has no TwiML to play.
ERROR_HEARD = [{"verb": "Say", "text": "We are sorry, an application error has occurred. "
                "Goodbye.", "voice": None, "language": None}]
#: The sandbox's callees (docs/sandbox.md): an answering machine, and one who lets the
#: phone ring PICKUP_SECONDS before picking up.
MACHINE, SLOW_PICKUP, PICKUP_SECONDS = "+15005552004", "+15005552005", 20
APP_SID = "AP" + "5e" * 16
#: OpenAPI, components/schemas/call_enum_status: what a Call resource's status can be.
CALL_ENUM_STATUS = {"queued", "ringing", "in-progress", "completed", "busy", "failed",
                    "no-answer", "canceled"}
EVENTS = ["initiated", "ringing", "answered", "completed"]


class Answer:
    """What the stand-in answers on one path: status, body, Content-Type (None: no header)."""

    def __init__(self, body: str | bytes = SAY.format("hello"), status: int = 200,
                 content_type: str | None = TWIML_TYPE) -> None:
        self.body, self.status, self.content_type = body, status, content_type


class App:
    """The app's URLs as far as Twilio can tell: each path answers as told, each request
    is recorded with its parameters and whether Twilio's signature holds."""

    def __init__(self, **answers: Answer) -> None:
        self.answers = answers
        self.seen: list[dict[str, Any]] = []
        self.base = ""
        self._runner: web.AppRunner | None = None

    def url(self, path: str) -> str:
        return f"{self.base}/{path}"

    def asked(self, path: str) -> list[dict[str, Any]]:
        return [seen for seen in self.seen if seen["path"] == f"/{path}"]

    async def handle(self, request: web.Request) -> web.Response:
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        url = str(request.url)
        signature = request.headers.get("X-Twilio-Signature", "")
        self.seen.append({
            "path": request.path, "method": request.method,
            "params": form if request.method == "POST" else dict(request.query),
            "valid": RequestValidator(AUTH_TOKEN).validate(url, form, signature)})
        answer = self.answers.get(request.path.strip("/"), Answer("", 204, None))
        body = answer.body.encode() if isinstance(answer.body, str) else answer.body
        response = web.Response(body=body, status=answer.status)
        if answer.content_type is None:
            response.headers.popall("Content-Type", None)
        else:
            response.headers["Content-Type"] = answer.content_type
        return response

    async def __aenter__(self) -> App:
        web_app = web.Application()
        web_app.router.add_route("*", "/{path:.*}", self.handle)
        self._runner = web.AppRunner(web_app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.base = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


def with_app(app: App, scenario: Callable[[TwilioSandbox, App], Awaitable[Any]],
             **options: Any) -> Any:
    async def both(sandbox: TwilioSandbox) -> Any:
        async with app:
            return await scenario(sandbox, app)
    return run(both, **options)


async def placed(sandbox: TwilioSandbox, **options: Any) -> dict[str, Any]:
    """A call created with twilio-python (to CUSTOMER unless told), once it has ended."""
    options = {"to": CUSTOMER, "from_": VALID_FROM, **options}
    call = await in_thread(twilio(sandbox).calls.create, **options)
    stored = await sandbox.wait_for_twiml(call.sid, timeout=30)
    assert stored["status"] in ("completed", "busy", "no-answer", "failed"), stored["status"]
    return stored


async def create(sandbox: TwilioSandbox, form: list[tuple[str, str]]) -> tuple[int, Any]:
    """A raw Calls.json POST (repeated parameters as given)."""
    async with aiohttp.ClientSession() as session, session.post(
            f"{sandbox.base_url}{ACCOUNT_PATH}/Calls.json", data=form,
            headers=auth_headers()) as answer:
        return answer.status, await answer.json(content_type=None)


# --- row 4: the TwiML cannot be had -------------------------------------------------------
# https://www.twilio.com/docs/usage/security/availability-reliability#fallback-urls: the
# FallbackUrl is asked with ErrorCode and ErrorUrl; without one "an error is logged and a
# pre-recorded message is played back to the caller"
# (https://www.twilio.com/en-us/blog/a-hidden-gem-fallback-urls-html). The callee has
# answered, so the call completes; OpenAPI Calls.json: FallbackUrl, FallbackMethod.


def test_a_failing_url_is_followed_by_the_fallback_url_with_the_error() -> None:
    app = App(voice=Answer("oops", 500), fallback=Answer(SAY.format("sorry, try later")))

    async def scenario(sandbox: TwilioSandbox, app: App) -> None:
        call = await placed(sandbox, url=app.url("voice"), fallback_url=app.url("fallback"),
                            fallback_method="GET", status_callback=app.url("status"))
        assert call["heard"] == [{"verb": "Say", "text": "sorry, try later", "voice": "woman",
                                  "language": None}]
        assert call["status"] == "completed" and int(call["duration"]) >= 1
        assert call["error"].startswith("11200 ")
        [asked] = app.asked("fallback")
        assert (asked["method"], asked["valid"]) == ("GET", True)
        assert (asked["params"]["ErrorCode"], asked["params"]["ErrorUrl"]) == (
            "11200", app.url("voice"))
        [end] = app.asked("status")
        assert (end["params"]["CallStatus"], end["params"]["CallDuration"] != "0") == (
            "completed", True)

    with_app(app, scenario)


@pytest.mark.parametrize(("answer", "code"), [
    (Answer("oops", 503), "11200"),
    (Answer("<Response><Say>unclosed</Response>"), "12100"),
    (None, "11205"),
], ids=["http-503", "not-xml", "connection-refused"])
def test_without_a_fallback_the_callee_hears_twilios_error_and_the_call_completes(
        answer: Answer | None, code: str) -> None:
    app = App(**({"voice": answer} if answer else {}))

    async def scenario(sandbox: TwilioSandbox, app: App) -> None:
        url = app.url("voice") if answer else "http://127.0.0.1:9/voice"  # discard: refused
        call = await placed(sandbox, url=url, status_callback=app.url("status"),
                            status_callback_event=EVENTS)
        assert (call["status"], call["heard"]) == ("completed", ERROR_HEARD)
        assert call["error"].startswith(f"{code} ")
        reports = [r["params"] for r in app.asked("status")]
        assert [r["CallStatus"] for r in reports] == ["initiated", "ringing", "in-progress",
                                                      "completed"]
        assert int(reports[-1]["CallDuration"]) >= 1

    with_app(app, scenario)


def test_a_fallback_that_fails_too_leaves_twilios_error_message() -> None:
    app = App(voice=Answer("oops", 500), fallback=Answer("{}", 200, "application/json"))

    async def scenario(sandbox: TwilioSandbox, app: App) -> None:
        call = await placed(sandbox, url=app.url("voice"), fallback_url=app.url("fallback"))
        assert (call["status"], call["heard"]) == ("completed", ERROR_HEARD)
        assert call["error"].startswith("11200 ") and "FallbackUrl: 12300 " in call["error"]
        assert app.asked("fallback")[0]["method"] == "POST"  # FallbackMethod's default

    with_app(app, scenario)


# --- row 5: a Call resource is never "initiated" ------------------------------------------
# OpenAPI components/schemas/call_enum_status has no initiated; the initiated event is
# reported as CallStatus (https://www.twilio.com/docs/voice/api/call-resource#statuscallbackevent).


def test_the_call_resource_never_shows_initiated_though_the_callback_does() -> None:
    async def scenario(sandbox: TwilioSandbox, app: App) -> None:
        call = await placed(sandbox, url=app.url("voice"), status_callback=app.url("status"),
                            status_callback_event=EVENTS)
        statuses = [step["status"] for step in sandbox.calls[0].steps]
        assert statuses == ["queued", "ringing", "in-progress", "completed"]
        assert set(statuses) <= CALL_ENUM_STATUS
        fetched = await in_thread(twilio(sandbox).calls(call["sid"]).fetch)
        assert fetched.status in CALL_ENUM_STATUS
        assert app.asked("status")[0]["params"]["CallStatus"] == "initiated"

    with_app(App(voice=Answer()), scenario)


# --- row 11: what a Calls create takes ------------------------------------------------------


def test_each_status_callback_event_is_a_parameter_of_its_own() -> None:
    """OpenAPI Calls.json StatusCallbackEvent: "specify each one in a separate
    status_callback_event parameter"; one holding several is refused, 21626
    (https://www.twilio.com/docs/api/errors/21626)."""
    async def scenario(sandbox: TwilioSandbox, app: App) -> None:
        await placed(sandbox, url=app.url("voice"), status_callback=app.url("status"),
                     status_callback_event=["ringing", "answered"])
        assert [r["params"]["CallStatus"] for r in app.asked("status")] == [
            "ringing", "in-progress", "completed"]  # completed always; initiated not asked
        base = [("To", CUSTOMER), ("From", VALID_FROM), ("Url", app.url("voice")),
                ("StatusCallback", app.url("status"))]
        status, body = await create(sandbox, [*base, ("StatusCallbackEvent", "ringing answered")])
        assert (status, body["code"]) == (400, 21626)
        status, _ = await create(sandbox, [*base, ("StatusCallbackEvent", "ringing"),
                                           ("StatusCallbackEvent", "answered")])
        assert status == 201

    with_app(App(voice=Answer()), scenario)


def test_status_callback_method_get_asks_with_the_report_in_the_query() -> None:
    """OpenAPI Calls.json StatusCallbackMethod: GET or POST (default POST); a GET is
    signed over the whole URL (https://www.twilio.com/docs/usage/security#validating-requests)."""
    async def scenario(sandbox: TwilioSandbox, app: App) -> None:
        await placed(sandbox, url=app.url("voice"), status_callback=app.url("status"),
                     status_callback_method="GET")
        [end] = app.asked("status")
        assert (end["method"], end["valid"], end["params"]["CallStatus"]) == (
            "GET", True, "completed")

    with_app(App(voice=Answer()), scenario)


@pytest.mark.parametrize(("change", "code"), [
    ({"StatusCallbackMethod": "PUT"}, 21200),
    ({"FallbackMethod": "DELETE"}, 21200),
    ({"FallbackUrl": "/relative"}, 21200),
    ({"MachineDetection": "yes"}, 21200),
    ({"Timeout": "0"}, 21208),
    ({"Timeout": "ten"}, 21208),
    ({"StatusCallbackEvent": "queued"}, 21626),
], ids=lambda value: str(value))
def test_options_twilio_cannot_use_are_refused_with_its_code(change: dict[str, str],
                                                             code: int) -> None:
    """https://www.twilio.com/docs/api/errors/21200 (an unsupported fallbackMethod or
    statusCallbackMethod, an invalid callback URL), /21208 (Timeout: a positive whole
    number), /21626; OpenAPI Calls.json MachineDetection: Enable or DetectMessageEnd."""
    async def scenario(sandbox: TwilioSandbox) -> None:
        form = {"To": CUSTOMER, "From": VALID_FROM, "Url": "https://example.com/voice", **change}
        status, body = await create(sandbox, list(form.items()))
        assert (status, body["code"]) == (400, code)
        assert sandbox.calls == []

    run(scenario)


def test_inline_twiml_over_4000_characters_is_refused() -> None:
    """OpenAPI Calls.json Twiml: "Max 4000 characters" (https://www.twilio.com/docs/api/errors/32018)."""
    async def scenario(sandbox: TwilioSandbox) -> None:
        twiml = SAY.format("x" * (4000 - len(SAY.format(""))))
        assert len(twiml) == 4000
        await placed(sandbox, twiml=twiml)
        error = await refused(twilio(sandbox).calls.create, to=CUSTOMER, from_=VALID_FROM,
                              twiml=twiml.replace("x", "xx", 1))
        assert (error.status, error.code) == (400, 32018)

    run(scenario)


@pytest.mark.parametrize(("timeout", "ends"), [
    (PICKUP_SECONDS - 1, "no-answer"), (PICKUP_SECONDS, "completed"), (None, "completed")])
def test_timeout_is_how_long_the_phone_rings(timeout: int | None, ends: str) -> None:
    """OpenAPI Calls.json Timeout: seconds "to allow the phone to ring before assuming
    there is no answer", 60 by default; SLOW_PICKUP's callee answers after 20 s."""
    async def scenario(sandbox: TwilioSandbox, app: App) -> None:
        call = await placed(sandbox, to=SLOW_PICKUP, url=app.url("voice"),
                            status_callback=app.url("status"),
                            **({"timeout": timeout} if timeout is not None else {}))
        assert call["status"] == ends
        assert app.asked("status")[-1]["params"]["CallStatus"] == ends
        assert len(app.asked("voice")) == (ends == "completed")  # TwiML only once answered

    with_app(App(voice=Answer()), scenario)


def test_timeout_decides_without_a_status_callback_too() -> None:
    async def scenario(sandbox: TwilioSandbox, app: App) -> None:
        call = await placed(sandbox, to=SLOW_PICKUP, url=app.url("voice"), timeout=5)
        assert (call["status"], call["duration"], app.asked("voice")) == ("no-answer", "0", [])

    with_app(App(voice=Answer()), scenario)


@pytest.mark.parametrize(("to", "mode", "answered_by"), [
    (MACHINE, "Enable", "machine_start"),
    (MACHINE, "DetectMessageEnd", "machine_end_beep"),
    (CUSTOMER, "Enable", "human"),
    (CUSTOMER, None, None),
])
def test_machine_detection_tells_who_answered(to: str, mode: str | None,
                                              answered_by: str | None) -> None:
    """https://www.twilio.com/docs/voice/answering-machine-detection: with
    MachineDetection, AnsweredBy comes with the request for the call's TwiML
    (synchronous AMD), and is on the Call resource (OpenAPI ``answered_by``)."""
    async def scenario(sandbox: TwilioSandbox, app: App) -> None:
        call = await placed(sandbox, to=to, url=app.url("voice"),
                            status_callback=app.url("status"), status_callback_event=EVENTS,
                            **({"machine_detection": mode} if mode else {}))
        [asked] = app.asked("voice")
        assert asked["params"].get("AnsweredBy") == answered_by
        fetched = await in_thread(twilio(sandbox).calls(call["sid"]).fetch)
        assert fetched.answered_by == answered_by
        reports = {r["params"]["CallStatus"]: r["params"] for r in app.asked("status")}
        assert reports["completed"].get("AnsweredBy") == answered_by
        assert "AnsweredBy" not in reports["ringing"]  # not known before the answer

    with_app(App(voice=Answer()), scenario)


# --- row 12: a call handled by a TwiML App ------------------------------------------------


def test_an_application_sid_call_reports_to_the_apps_status_callback_only() -> None:
    """OpenAPI Calls.json StatusCallback, StatusCallbackEvent, StatusCallbackMethod,
    FallbackUrl, Method: "If an application_sid parameter is present, this parameter is
    ignored"; the TwiML App's Voice URL and StatusCallback apply
    (https://www.twilio.com/docs/usage/api/applications)."""
    async def scenario(sandbox: TwilioSandbox, app: App) -> None:
        sandbox.add_twiml_app(TwimlApp(APP_SID, ACCOUNT_SID, app.url("app-voice"),
                                       app.url("app-status")))
        call = await placed(sandbox, application_sid=APP_SID, url=app.url("voice"),
                            status_callback=app.url("status"), status_callback_event=EVENTS)
        assert (call["status"], call["application_sid"]) == ("completed", APP_SID)
        assert app.asked("status") == app.asked("voice") == []
        assert len(app.asked("app-voice")) == 1
        assert [r["params"]["CallStatus"] for r in app.asked("app-status")] == ["completed"]
        error = await refused(twilio(sandbox).calls.create, to=CUSTOMER, from_=VALID_FROM,
                              application_sid="AP" + "0" * 32)
        assert (error.status, error.code) == (400, 21218)

    with_app(App(**{"app-voice": Answer()}), scenario)


# --- row 13: <Say> voices and languages ---------------------------------------------------
# https://www.twilio.com/docs/voice/twiml/say: man, woman, Polly.*, Google.*; language
# like en-US; "an invalid combination of voice and language may result in error and
# <Say> instruction failure"; warning 13511 (https://www.twilio.com/docs/api/errors/13511).

SAY_CASES = [
    ("man", None, True), ("woman", "fr-FR", True), ("Polly.Joanna", None, True),
    ("Polly.Joanna-Neural", "en-US", True), ("Google.en-GB-Standard-A", "en-GB", True),
    ("Google.en-US-Chirp3-HD-Aoede", None, True), ("Google.en-GB-Standard-A", "fr-FR", False),
    ("alice", None, False), ("alice", "en-GB", False), ("robot", None, False),
    ("Polly.", None, False), ("woman", "english", False), ("man", "en", False),
    ("woman", "EN-us", False), (None, "de-DE", True),
]


@pytest.mark.parametrize(("voice", "language", "said"), SAY_CASES)
def test_the_sandbox_says_only_documented_voices_and_pairs(voice: str | None,
                                                           language: str | None,
                                                           said: bool) -> None:
    attributes = "".join(f' {name}="{value}"' for name, value in
                         (("voice", voice), ("language", language)) if value)
    document = f"<Response><Say{attributes}>hi</Say></Response>"
    heard, warnings = callbacks.heard_in(callbacks.read_response(document))
    assert bool(heard) == said
    assert [w.split()[0] for w in warnings] == ([] if said else ["13511"])


def test_a_say_twilio_would_not_say_is_logged_and_the_call_goes_on() -> None:
    document = ('<Response><Say voice="alice">old</Say><Say voice="Polly.Amy">new</Say>'
                "</Response>")

    async def scenario(sandbox: TwilioSandbox) -> None:
        call = await placed(sandbox, twiml=document)
        assert call["status"] == "completed"
        assert [item["text"] for item in call["heard"]] == ["new"]
        assert [note.split()[0] for note in call["notifications"]] == ["13511"]

    run(scenario)


@pytest.mark.parametrize(("voice", "language", "said"), SAY_CASES)
def test_the_app_takes_exactly_the_voices_twilio_says(voice: str | None, language: str | None,
                                                      said: bool) -> None:
    """What ``make_call`` and ``twiml`` accept is what the sandbox, holding Twilio's rules
    on its own, says: no voice the app offers leaves the callee in silence."""
    params = {"message": "hi", **({"voice": voice} if voice else {}),
              **({"language": language} if language else {})}
    try:
        document = voice_document(params)
    except Problem as problem:
        assert problem.status == 400
        assert not said
        return
    heard, warnings = callbacks.heard_in(callbacks.read_response(document))
    assert (len(heard), warnings) == (1, [])
    assert said


# --- row 14: <Dial callerId> --------------------------------------------------------------
# https://www.twilio.com/docs/api/errors/13214: "callerId must be the calling number,
# called number, or a validated outgoing number ... if the calling leg is a client leg,
# the caller ID is required and must be a validated outgoing number".


def token(identity: str = "alice") -> str:
    grant = VoiceGrant(outgoing_application_sid=APP_SID)
    return AccessToken(ACCOUNT_SID, KEY_SID, KEY_SECRET, grants=[grant], identity=identity,
                       ttl=600).to_jwt()


def dial(caller_id: str | None) -> str:
    attribute = f' callerId="{caller_id}"' if caller_id else ""
    return f"<Response><Dial{attribute}><Number>+14155552671</Number></Dial></Response>"


async def sdk_call(sandbox: TwilioSandbox, app: App, **data: Any) -> dict[str, Any]:
    sandbox.add_twiml_app(TwimlApp(APP_SID, ACCOUNT_SID, app.url("voice")))
    async with aiohttp.ClientSession() as session:
        path = ("/_sandbox/inbound/call" if "application_sid" in data
                else "/_sandbox/client_calls")
        async with session.post(f"{sandbox.base_url}{path}", json=data) as answer:
            body = await answer.json()
            assert answer.status == 200, body
            return body.get("call", body)


@pytest.mark.parametrize(("caller_id", "dialed"), [
    (None, False), (STRANGER, False), (VALID_FROM, True), ("+14155550142", True)])
def test_a_client_leg_dials_only_with_a_number_of_the_account(caller_id: str | None,
                                                              dialed: bool) -> None:
    async def scenario(sandbox: TwilioSandbox, app: App) -> None:
        sandbox.default_number = "+14155550142"  # the number the sandbox is configured with
        call = await sdk_call(sandbox, app, token=token(), to="+14155552671")
        assert call["status"] == "completed"
        assert [d["to"] for d in call["dialed"]] == (["+14155552671"] if dialed else [])
        assert [n.split(" ")[3] for n in call["notifications"]] == ([] if dialed else ["13214"])

    with_app(App(voice=Answer(dial(caller_id))), scenario)


def test_live_like_credentials_own_any_valid_caller_id() -> None:
    """In ``live-like`` mode any valid number is a sender of the account (docs/sandbox.md):
    a client leg may show it, not a number that is none."""
    async def scenario(sandbox: TwilioSandbox, app: App) -> None:
        app.answers["voice"] = Answer(dial(STRANGER))
        assert (await sdk_call(sandbox, app, token=token(), to="+14155552671"))["dialed"]
        app.answers["voice"] = Answer(dial("+1555"))
        assert not (await sdk_call(sandbox, app, token=token(), to="+14155552671"))["dialed"]

    with_app(App(), scenario, mode="live-like")


@pytest.mark.parametrize(("caller_id", "dialed"), [
    (None, True), ("+14155550188", True), (VALID_FROM, True), (STRANGER, False)])
def test_a_phone_leg_may_show_the_calling_or_called_number(caller_id: str | None,
                                                           dialed: bool) -> None:
    async def scenario(sandbox: TwilioSandbox, app: App) -> None:
        call = await sdk_call(sandbox, app, application_sid=APP_SID, **{"from": "+14155550188"})
        assert bool(call["dialed"]) == dialed

    with_app(App(voice=Answer(dial(caller_id))), scenario)


# --- row 15: what Twilio makes of the answer ----------------------------------------------
# https://www.twilio.com/docs/api/twiml/your_response ("Twilio Understands MIME Types"),
# https://www.twilio.com/docs/errors/12300, /api/errors/11750 (64 kB), /api/errors/12102.


@pytest.mark.parametrize(("answer", "heard", "code"), [
    (Answer(SAY.format("hi"), content_type="application/xml; charset=utf-8"), "hi", None),
    (Answer(SAY.format("hi"), content_type="text/html"), "hi", None),
    (Answer("Your table is ready", content_type="text/plain"), "Your table is ready", None),
    (Answer(b"ID3\x03", content_type="audio/mpeg"), "play", None),
    (Answer('{"say": "hi"}', content_type="application/json"), None, "12300"),
    (Answer(SAY.format("hi"), content_type=None), None, "12300"),
    (Answer(SAY.format("x" * 65536)), None, "11750"),
    (Answer("<Html><Say>hi</Say></Html>"), None, "12102"),
], ids=["xml", "html", "plain", "audio", "json", "no-type", "over-64kB", "not-response"])
def test_the_answer_is_played_by_its_type_size_and_root(answer: Answer, heard: str | None,
                                                         code: str | None) -> None:
    async def scenario(sandbox: TwilioSandbox, app: App) -> None:
        call = await placed(sandbox, url=app.url("voice"))
        assert call["status"] == "completed"
        if code is None:
            assert call["error"] is None
            [item] = call["heard"]
            assert item.get("text", "play" if item.get("url") == app.url("voice") else None) \
                == heard
        else:
            assert call["error"].startswith(f"{code} ")
            assert call["heard"] == ERROR_HEARD

    with_app(App(voice=answer), scenario)


# --- row 16: Voice SDK identities ---------------------------------------------------------
# https://www.twilio.com/docs/api/errors/31105: "Client name should not contain control,
# space, delims, or unwise characters and should not be longer than 256 characters".


@pytest.mark.parametrize("identity", ["with space", "a<b", "a>b", "a#b", "a%b", 'a"b', "a{b",
                                      "a|b", "a\\b", "a^b", "a[b", "a`b", "a\tb", "x" * 257])
def test_a_token_whose_identity_breaks_the_client_name_rules_is_31105(identity: str) -> None:
    async def scenario(sandbox: TwilioSandbox) -> None:
        sandbox.add_twiml_app(TwimlApp(APP_SID, ACCOUNT_SID, "http://127.0.0.1:9/voice"))
        with pytest.raises(TokenRefused) as refusal:
            verify_token(sandbox, token(identity))
        assert refusal.value.code == 31105
        verify_token(sandbox, token("x" * 256))  # the longest Twilio takes
        verify_token(sandbox, token("alice.o'neil-1@example.com"))  # none of those classes

    run(scenario)


@settings(deadline=None, max_examples=200)
@given(st.from_regex(CLIENT_IDENTITY, fullmatch=True))
def test_every_identity_the_app_can_issue_is_a_valid_client_name(identity: str) -> None:
    """``CLIENT_IDENTITY`` (settings' VOICE_* identities and ``client:`` addresses) is
    stricter than 31105: letters, digits and underscores, at most 121."""
    assert voice_sdk.client_name_problem(identity) is None


@settings(deadline=None, max_examples=200)
@given(st.text(min_size=1, max_size=300), st.sampled_from(["aad", "google", "github", "x"]))
def test_a_signed_in_user_gets_a_valid_client_name_or_none(user_id: str, provider: str) -> None:
    """``voice_token``'s identity for any user ID a provider could send (any characters,
    any length): a valid client name, else 403 rather than one Twilio refuses."""
    settings_ = load_settings({"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN})
    try:
        identity = identity_for(Caller(user_id, provider), settings_)
    except Problem as problem:
        assert problem.status == 403
        return
    assert voice_sdk.client_name_problem(identity) is None
