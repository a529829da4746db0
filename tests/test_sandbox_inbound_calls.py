"""An inbound call played by the sandbox as Twilio plays it, against a stand-in app.

``POST /_sandbox/inbound/call`` rings the app's voice URL; the sandbox follows the
TwiML to its end (``<Dial action>``, ``<Record action recordingStatusCallback
transcribeCallback>``, ``<Reject>``...), the rung party answering, declining or not
answering as told, on a simulated clock; it keeps the recording behind Basic Auth.
The stand-in answers each path as an app would and records every request with whether
Twilio's signature holds. Pages cited: https://www.twilio.com/docs/voice/twiml/dial,
/record, /reject; the shapes: Twilio's OpenAPI description (``twilio_api_v2010.json``).
"""

from __future__ import annotations

import asyncio
import io
import json
import wave
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import jsonschema_rs
import pytest
from aiohttp import web
from installs import CACHE, ROOT, require_install
from stub_server import serve
from test_twilio_sandbox import (
    ACCOUNT_PATH,
    ACCOUNT_SID,
    AUTH_TOKEN,
    OTHER_ACCOUNT_SID,
    OTHER_AUTH_TOKEN,
    auth_headers,
    in_thread,
)
from test_twilio_sandbox import run as run_sandbox
from test_twilio_sandbox import twilio as twilio_client
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator

from twilio_sandbox import VALID_FROM, TwilioSandbox, call_flow
from twilio_sandbox.recordings import RecordingStore
from twilio_sandbox.resources import now

CALLER = "+14155550161"
JSON = {"Content-Type": "application/json"}
SPEC = CACHE / "contract" / "twilio_api_v2010.json"

RING = ('<Response><Dial timeout="25" action="/dialed" answerOnBridge="true">'
        "<Client><Identity>alice</Identity><Parameter name=\"who\" value=\"x\"/></Client>"
        "</Dial><Say>never reached</Say></Response>")
VOICEMAIL = ('<Response><Say>Leave a message</Say><Record maxLength="120" transcribe="true" '
             'action="/recorded" recordingStatusCallback="/recording" '
             'transcribeCallback="/transcribed"/></Response>')
HANGUP = "<Response><Hangup/></Response>"


class App:
    """The app's URLs: each path answers its TwiML (204 when it has none); every request
    is kept in order, with its parameters and whether its signature holds."""

    def __init__(self, **answers: str | list[int]) -> None:
        self.answers = answers
        self.seen: list[dict[str, Any]] = []
        self.base = ""
        self.arrived = asyncio.Event()

    def asked(self, path: str) -> list[dict[str, str]]:
        return [seen["params"] for seen in self.seen if seen["path"] == f"/{path}"]

    def order(self) -> list[str]:
        return [seen["path"].strip("/") for seen in self.seen]

    async def handle(self, request: web.Request) -> web.Response:
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        signature = request.headers.get("X-Twilio-Signature", "")
        valid = RequestValidator(AUTH_TOKEN).validate(str(request.url), form, signature)
        self.seen.append({"path": request.path, "params": form or dict(request.query),
                          "valid": valid})
        self.arrived.set()
        answer = self.answers.get(request.path.strip("/"))
        if isinstance(answer, list):  # statuses to answer in turn, then 200
            return web.Response(status=answer.pop(0) if answer else 200)
        if answer is None:
            return web.Response(status=204)
        return web.Response(text=answer, content_type="text/xml")


def run(app: App, scenario: Callable[[TwilioSandbox, App, aiohttp.ClientSession],
                                     Awaitable[None]]) -> None:
    async def main(sandbox: TwilioSandbox) -> None:
        runner, app.base = await serve(web_app(app), shutdown_timeout=0.5)
        sandbox.app.functions = {"twiml": f"{app.base}/twiml"}
        try:
            async with aiohttp.ClientSession(sandbox.base_url) as session:
                await scenario(sandbox, app, session)
        finally:
            await runner.cleanup()

    run_sandbox(main)


def web_app(app: App) -> web.Application:
    served = web.Application()
    served.router.add_route("*", "/{path:.*}", app.handle)
    return served


async def ring(session: aiohttp.ClientSession, **choice: Any) -> tuple[int, Any]:
    body = {"from": CALLER, **choice}
    async with session.post("/_sandbox/inbound/call", data=json.dumps(body),
                            headers=JSON) as answer:
        return answer.status, await answer.json()


async def ok(session: aiohttp.ClientSession, **choice: Any) -> dict[str, Any]:
    status, outcome = await ring(session, **choice)
    assert status == 200, outcome
    return outcome


# --- the rung user's choice decides <Dial> ---------------------------------------------------


def test_unanswered_the_dial_action_hears_no_answer_and_voicemail_is_recorded() -> None:
    app = App(twiml=RING, dialed=VOICEMAIL, recorded=HANGUP)

    async def scenario(sandbox: TwilioSandbox, app: App, session: aiohttp.ClientSession) -> None:
        outcome = await ok(session, answer="no-answer", message=7, transcript="Call me back")
        call = outcome["call"]
        assert all(seen["valid"] for seen in app.seen)
        assert app.order() == ["twiml", "dialed", "recorded", "recording", "transcribed"]
        [first] = app.asked("twiml")
        assert (first["CallStatus"], first["Direction"], first["From"], first["To"]) == (
            "ringing", "inbound", CALLER, VALID_FROM)
        [dialed] = app.asked("dialed")
        assert dialed["DialCallStatus"] == "no-answer"
        assert dialed["DialBridged"] == "false"
        assert dialed["DialCallSid"].startswith("CA") and dialed["DialCallSid"] != call["sid"]
        assert {dialed[k] for k in ("CallSid", "AccountSid", "From", "To", "ApiVersion")} == {
            call["sid"], ACCOUNT_SID, CALLER, VALID_FROM, "2010-04-01"}
        # answerOnBridge: nobody picked up, so the call still rings when the action is asked
        assert (dialed["CallStatus"], dialed["Direction"]) == ("ringing", "inbound")
        [recorded] = app.asked("recorded")
        [recording] = outcome["recordings"]
        url = f"{sandbox.base_url}{ACCOUNT_PATH}/Recordings/{recording['sid']}"
        assert (recorded["RecordingUrl"], recorded["RecordingDuration"], recorded["Digits"]) == (
            url, "7", "hangup")
        [status] = app.asked("recording")
        assert {k: status[k] for k in ("RecordingSid", "RecordingUrl", "RecordingStatus",
                                       "RecordingDuration", "RecordingChannels",
                                       "RecordingSource", "CallSid", "AccountSid")} == {
            "RecordingSid": recording["sid"], "RecordingUrl": url, "RecordingStatus": "completed",
            "RecordingDuration": "7", "RecordingChannels": "1", "RecordingSource": "RecordVerb",
            "CallSid": call["sid"], "AccountSid": ACCOUNT_SID}
        assert status["RecordingStartTime"]
        [text] = app.asked("transcribed")
        assert (text["TranscriptionText"], text["TranscriptionStatus"], text["RecordingSid"],
                text["RecordingUrl"], text["CallSid"], text["From"]) == (
            "Call me back", "completed", recording["sid"], url, call["sid"], CALLER)
        assert text["TranscriptionSid"].startswith("TR")
        assert text["TranscriptionUrl"].endswith(f"/Transcriptions/{text['TranscriptionSid']}")
        # The call: answered for the voicemail only, on its own clock (the 25 s of ringing
        # are not billed, nor waited for): the greeting's words and the 7 s message.
        assert (call["status"], call["direction"]) == ("completed", "inbound")
        assert int(call["duration"]) == 9
        assert [(d["kind"], d["to"], d["status"], d["parameters"]) for d in call["dialed"]] == [
            ("client", "alice", "no-answer", {"who": "x"})]
        assert call["recordings"] == [{"sid": recording["sid"], "duration": 7,
                                       "transcription": "Call me back",
                                       "transcription_status": "completed"}]
        assert "never reached" not in json.dumps(call["heard"])

    run(app, scenario)


@pytest.mark.parametrize(("choice", "dial_status", "duration", "bridged"), [
    ("answer", "completed", "42", "true"), ("decline", "busy", "0", "false")])
def test_the_rung_users_choice_is_the_dial_call_status(choice: str, dial_status: str,
                                                       duration: str, bridged: str) -> None:
    async def scenario(sandbox: TwilioSandbox, app: App, session: aiohttp.ClientSession) -> None:
        call = (await ok(session, answer=choice, hold_seconds=42))["call"]
        [dialed] = app.asked("dialed")
        assert (dialed["DialCallStatus"], dialed["DialCallDuration"], dialed["DialBridged"]) == (
            dial_status, duration, bridged)
        assert call["dialed"][0]["status"] == dial_status
        assert call["status"] == "completed"
        if choice == "answer":  # the talk is the call's: 42 s on the clock, none waited
            assert (dialed["CallStatus"], int(call["duration"])) == ("in-progress", 42)
        assert app.order() == ["twiml", "dialed"]

    run(App(twiml=RING, dialed=HANGUP), scenario)


def test_a_dial_without_action_goes_on_with_the_next_verb() -> None:
    document = ('<Response><Dial timeout="10"><Number>+14155550162</Number></Dial>'
                "<Say>Nobody came</Say></Response>")

    async def scenario(sandbox: TwilioSandbox, app: App, session: aiohttp.ClientSession) -> None:
        call = (await ok(session, answer="no-answer"))["call"]
        assert [h.get("text") for h in call["heard"] if h["verb"] == "Say"] == ["Nobody came"]
        assert call["dialed"][0]["status"] == "no-answer"
        assert int(call["duration"]) == 10 + 1  # answered at once: the ringing counts
        assert call["actions"][0] == "dialed +1415•••0162 with caller ID (none)"

    run(App(twiml=document), scenario)


@pytest.mark.parametrize(("reason", "status"), [("busy", "busy"), (None, "no-answer")])
def test_reject_first_leaves_the_call_unanswered_busy_or_no_answer(reason: str | None,
                                                                   status: str) -> None:
    attribute = f' reason="{reason}"' if reason else ""

    async def scenario(sandbox: TwilioSandbox, app: App, session: aiohttp.ClientSession) -> None:
        call = (await ok(session, answer="answer"))["call"]
        assert (call["status"], call["duration"], call["start_time"]) == (status, "0", None)
        assert [s["status"] for s in call["steps"]] == ["ringing", status]
        assert call["heard"] == []
        fetched = await in_thread(twilio_client(sandbox).calls(call["sid"]).fetch)
        assert (fetched.status, fetched.duration) == (status, "0")

    run(App(twiml=f"<Response><Reject{attribute}/><Say>unreachable</Say></Response>"),
        scenario)


def test_a_caller_who_says_nothing_leaves_no_recording_and_no_action_request() -> None:
    document = ('<Response><Record action="/recorded" recordingStatusCallback="/recording" '
                'recordingStatusCallbackEvent="completed absent"/></Response>')

    async def scenario(sandbox: TwilioSandbox, app: App, session: aiohttp.ClientSession) -> None:
        outcome = await ok(session, message=0)
        assert outcome["recordings"] == [] and outcome["call"]["status"] == "completed"
        assert app.order() == ["twiml", "recording"]
        assert app.asked("recording")[0]["RecordingStatus"] == "absent"

    run(App(twiml=document), scenario)


def test_only_recordings_of_2_to_120_seconds_are_transcribed() -> None:
    document = ('<Response><Record transcribe="true" action="/recorded" '
                'transcribeCallback="/transcribed"/></Response>')

    async def scenario(sandbox: TwilioSandbox, app: App, session: aiohttp.ClientSession) -> None:
        outcome = await ok(session, message=1)
        [text] = app.asked("transcribed")
        assert (text["TranscriptionStatus"], text["TranscriptionText"]) == ("failed", "")
        assert outcome["call"]["recordings"][0]["transcription_status"] == "failed"

    run(App(twiml=document, recorded=HANGUP), scenario)


def test_a_recording_callback_honours_its_connection_overrides() -> None:
    document = ('<Response><Record action="/recorded" '
                'recordingStatusCallback="/recording#rc=2&amp;rp=5xx"/></Response>')

    async def scenario(sandbox: TwilioSandbox, app: App, session: aiohttp.ClientSession) -> None:
        await ok(session)
        tries = [seen for seen in app.seen if seen["path"] == "/recording"]
        assert len(tries) == 3 and all(seen["valid"] for seen in tries)  # 503, 500, then 200

    run(App(twiml=document, recorded=HANGUP, recording=[503, 500]), scenario)


@pytest.mark.parametrize("choice", [
    {"answer": "maybe"}, {"hold_seconds": -1}, {"hold_seconds": True}, {"message": 601},
    {"message": "5"}, {"transcript": 3}, {"from": "0161"}])
def test_a_choice_the_sandbox_cannot_play_is_a_400_problem(choice: dict[str, Any]) -> None:
    async def scenario(sandbox: TwilioSandbox, app: App, session: aiohttp.ClientSession) -> None:
        status, problem = await ring(session, **choice)
        assert (status, problem["status"], problem["title"]) == (400, 400, "Invalid field")
        assert app.seen == [] and sandbox.calls == []

    run(App(twiml=RING), scenario)


def json_schema(node: Any) -> Any:
    """OpenAPI 3.0's ``nullable: true`` as JSON Schema's ``null`` type."""
    if isinstance(node, list):
        return [json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: json_schema(value) for key, value in node.items() if key != "nullable"}
    if node.get("nullable") is True:
        if "type" in converted:
            converted["type"] = [converted["type"], "null"]
        else:
            converted = {"anyOf": [converted, {"type": "null"}]}
    return converted


# --- the recording, behind Basic Auth -------------------------------------------------------


def test_the_recording_is_served_as_twilio_serves_it_to_the_account_only() -> None:
    async def scenario(sandbox: TwilioSandbox, app: App, session: aiohttp.ClientSession) -> None:
        outcome = await ok(session, answer="decline", message=3)
        [kept] = outcome["recordings"]
        sid, call_sid = kept["sid"], outcome["call"]["sid"]
        client = twilio_client(sandbox)
        fetched = await in_thread(client.recordings(sid).fetch)
        assert (fetched.call_sid, fetched.duration, fetched.status, fetched.source) == (
            call_sid, "3", "completed", "RecordVerb")
        listed = await in_thread(client.recordings.list, call_sid=call_sid)
        assert [r.sid for r in listed] == [sid]
        path = f"{ACCOUNT_PATH}/Recordings/{sid}"
        for suffix in ("", ".wav"):
            async with session.get(path + suffix, headers=auth_headers()) as answer:
                assert (answer.status, answer.content_type) == (200, "audio/x-wav")
                with wave.open(io.BytesIO(await answer.read())) as audio:
                    assert audio.getnframes() / audio.getframerate() == pytest.approx(3, abs=0.01)
        async with session.get(path) as answer:  # "Enforce HTTP Auth on Media URLs"
            assert answer.status == 401
        async with session.get(f"{path}.mp3", headers=auth_headers()) as answer:
            assert (answer.status, (await answer.json())["code"]) == (404, 20404)
        # The console's own path: the same audio, for the sandbox's origin only.
        async with session.get(f"/_sandbox/recordings/{sid}") as answer:
            assert (answer.status, answer.headers["Cross-Origin-Resource-Policy"]) == (
                200, "same-origin")
        async with session.get(f"/_sandbox/recordings/{sid}",
                               headers={"Sec-Fetch-Site": "cross-site"}) as answer:
            assert answer.status == 403
        [transcription] = await in_thread(client.transcriptions.list)
        assert (transcription.recording_sid, transcription.status) == (sid, "completed")
        await in_thread(client.transcriptions(transcription.sid).delete)
        await in_thread(client.recordings(sid).delete)
        with pytest.raises(TwilioRestException) as gone:
            await in_thread(client.recordings(sid).fetch)
        assert (gone.value.status, gone.value.code) == (404, 20404)
        async with session.get(path, headers=auth_headers()) as answer:
            assert answer.status == 404

    run(App(twiml=RING, dialed=VOICEMAIL, recorded=HANGUP), scenario)


def test_recording_and_transcription_shapes_are_twilios_openapi_descriptions() -> None:
    require_install(CACHE / "contract", ROOT / "tests" / "contract",
                    ("install.sh", "package.json", "package-lock.json"), (SPEC,),
                    "`make contract` or `sh tests/contract/install.sh`")
    spec = json.loads(SPEC.read_text(encoding="utf-8"))

    def validator(name: str) -> Any:
        schema = {"$ref": f"#/components/schemas/{name}",
                  "components": json_schema(spec["components"])}
        return jsonschema_rs.validator_for(schema)

    async def scenario(sandbox: TwilioSandbox, app: App, session: aiohttp.ClientSession) -> None:
        outcome = await ok(session, answer="no-answer")
        sid = outcome["recordings"][0]["sid"]
        async with session.get(f"{ACCOUNT_PATH}/Recordings/{sid}.json",
                               headers=auth_headers()) as answer:
            recording = await answer.json()
        async with session.get(f"{ACCOUNT_PATH}/Transcriptions.json",
                               headers=auth_headers()) as answer:
            [transcription] = (await answer.json())["transcriptions"]
        validator("api.v2010.account.recording").validate(recording)
        validator("api.v2010.account.transcription").validate(transcription)
        assert set(recording) == set(spec["components"]["schemas"][
            "api.v2010.account.recording"]["properties"])
        assert set(transcription) == set(spec["components"]["schemas"][
            "api.v2010.account.transcription"]["properties"])

    run(App(twiml=RING, dialed=VOICEMAIL, recorded=HANGUP), scenario)


# --- what the reviewers found ---------------------------------------------------------------


def test_an_empty_response_is_an_answered_call_that_ends_completed() -> None:
    """"Any other response [than <Reject> first] will result in an answered call"
    (https://www.twilio.com/docs/voice/twiml/reject)."""
    async def scenario(sandbox: TwilioSandbox, app: App, session: aiohttp.ClientSession) -> None:
        call = (await ok(session, answer="answer"))["call"]
        assert [s["status"] for s in call["steps"]] == ["ringing", "in-progress", "completed"]
        assert call["start_time"] is not None and call["duration"] == "1"
        fetched = await in_thread(twilio_client(sandbox).calls(call["sid"]).fetch)
        assert fetched.status == "completed"

    run(App(twiml="<Response/>"), scenario)


class WatchingApp(App):
    """Notes, as each action request arrives, which recording callbacks the sandbox has
    already set going (the tasks it names ``recording callbacks CA...``)."""

    def __init__(self, **answers: str | list[int]) -> None:
        super().__init__(**answers)
        self.pending_at_action: list[str] = []

    async def handle(self, request: web.Request) -> web.Response:
        if request.path == "/recorded":
            self.pending_at_action = [task.get_name() for task in asyncio.all_tasks()
                                      if task.get_name().startswith("recording callbacks")]
        return await super().handle(request)


def test_recording_callbacks_start_only_once_the_record_action_has_answered() -> None:
    app = WatchingApp(twiml=VOICEMAIL, recorded=HANGUP)

    async def scenario(sandbox: TwilioSandbox, app: App, session: aiohttp.ClientSession) -> None:
        await ok(session, message=4)
        assert app.order() == ["twiml", "recorded", "recording", "transcribed"]
        assert isinstance(app, WatchingApp) and app.pending_at_action == []

    run(app, scenario)


def test_a_deleted_recording_takes_its_transcriptions_with_it() -> None:
    async def scenario(sandbox: TwilioSandbox, app: App, session: aiohttp.ClientSession) -> None:
        outcome = await ok(session, answer="no-answer", message=3)
        [kept] = outcome["recordings"]
        client = twilio_client(sandbox)
        [transcription] = await in_thread(client.transcriptions.list)
        assert transcription.recording_sid == kept["sid"]
        await in_thread(client.recordings(kept["sid"]).delete)
        assert await in_thread(client.transcriptions.list) == []
        assert sandbox.recordings.all_transcriptions() == []

    run(App(twiml=RING, dialed=VOICEMAIL, recorded=HANGUP), scenario)


def test_a_forgotten_recording_takes_its_transcriptions_with_it() -> None:
    store = RecordingStore(history=1)
    first = store.keep(ACCOUNT_SID, "CA" + "a" * 32, 2, now())
    store.transcribe(first, "first words", "completed")
    second = store.keep(ACCOUNT_SID, "CA" + "b" * 32, 2, now())
    kept = store.transcribe(second, "second words", "completed")
    assert [r.sid for r in store.all()] == [second.sid]
    assert store.all_transcriptions() == [kept]
    store.delete_transcription(kept)
    assert second.transcriptions == []


def test_another_accounts_recordings_are_not_listed() -> None:
    async def scenario(sandbox: TwilioSandbox, app: App, session: aiohttp.ClientSession) -> None:
        await ok(session, answer="no-answer", message=3)
        other = twilio_client(sandbox, OTHER_ACCOUNT_SID, OTHER_AUTH_TOKEN, OTHER_ACCOUNT_SID)
        assert await in_thread(other.recordings.list) == []
        assert len(await in_thread(twilio_client(sandbox).recordings.list)) == 1

    run(App(twiml=RING, dialed=VOICEMAIL, recorded=HANGUP), scenario)


class HeldApp(App):
    """Holds its answer to the call's first request until ``release`` is set."""

    def __init__(self, **answers: str | list[int]) -> None:
        super().__init__(**answers)
        self.release = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        if request.path == "/twiml":
            self.arrived.set()
            await self.release.wait()
        return await super().handle(request)


def test_an_app_too_slow_for_the_console_request_is_a_504_problem(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(call_flow, "RUN_SECONDS", 0.05)  # the app answers only when told
    app = HeldApp(twiml=HANGUP)

    async def scenario(sandbox: TwilioSandbox, app: App, session: aiohttp.ClientSession) -> None:
        assert isinstance(app, HeldApp)
        try:
            status, problem = await ring(session)
        finally:
            app.release.set()
        assert (status, problem["status"], problem["title"]) == (504, 504, "App too slow")
        [call] = sandbox.calls
        assert call["sid"] in problem["detail"]

    run(app, scenario)
