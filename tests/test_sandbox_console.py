"""The console's mechanics without a browser: events, the webhook log, the console API.

Each test runs a sandbox and, where the sandbox must reach "the app", a small
stand-in for its ``twiml`` endpoint that checks Twilio's signature, all on
loopback inside one ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from live import LiveApp
from stub_server import serve
from twilio.request_validator import RequestValidator

from twilio_sandbox import VALID_FROM, TwilioSandbox, bodies
from twilio_sandbox.events import QUEUE_LIMIT, RESYNC, EventHub, Tracked, envelope
from twilio_sandbox.masking import mask
from twilio_sandbox.simulate import parse_replies
from twilio_sandbox.webhook_log import MAX_ANSWER, MAX_RESENT, MAX_SHOWN

ACCOUNT_SID = "AC" + "5" * 32
AUTH_TOKEN = "console-auth-token"
TEXTER = "+14155550123"
#: What every request that changes the sandbox carries, a body-less one too.
JSON = {"Content-Type": "application/json"}
REPLY = ('<?xml version="1.0" encoding="UTF-8"?><Response><Message>Got it &amp; thanks'
         "<Media>https://example.com/a.png</Media></Message></Response>")


class App:
    """The app's twiml and send_sms, as far as the sandbox can tell."""

    def __init__(self, answer: str = REPLY, status: int = 200) -> None:
        self.answer, self.status = answer, status
        self.seen: list[dict[str, Any]] = []
        self.base_url = ""

    async def twiml(self, request: web.Request) -> web.Response:
        params = dict(await request.post())
        signature = request.headers.get("X-Twilio-Signature", "")
        self.seen.append({
            "params": params, "signature": signature,
            "valid": RequestValidator(AUTH_TOKEN).validate(str(request.url), params, signature),
        })
        return web.Response(text=self.answer, status=self.status, content_type="text/xml")

    async def send_sms(self, request: web.Request) -> web.Response:
        key = request.headers.get("x-functions-key")
        self.seen.append({"json": await request.json(), "key": key})
        return web.json_response({"sid": "SM" + "9" * 32, "status": "queued"}, status=201)

    async def status_callback(self, request: web.Request) -> web.Response:
        params = dict(await request.post())
        self.seen.append({"reported": params.get("MessageStatus")})
        await asyncio.sleep(0.3)  # a slow app: the next step waits for this answer
        return web.Response(status=204)

    async def start(self) -> web.AppRunner:
        app = web.Application()
        app.router.add_post("/api/status_callback", self.status_callback)
        app.router.add_post("/api/twiml", self.twiml)
        app.router.add_post("/api/send_sms", self.send_sms)
        runner, self.base_url = await serve(app, shutdown_timeout=0.5)
        return runner


def run(scenario: Callable[[TwilioSandbox, App, aiohttp.ClientSession], Awaitable[None]],
        app: App | None = None, **options: Any) -> None:
    """A sandbox connected to a stand-in app, and a client session for the console API."""
    app = app or App()

    async def main() -> None:
        runner = await app.start()
        try:
            async with TwilioSandbox(accounts={ACCOUNT_SID: AUTH_TOKEN}, **options) as sandbox:
                sandbox.app.functions = {name: f"{app.base_url}/api/{name}"
                                         for name in ("twiml", "send_sms", "make_call")}
                async with aiohttp.ClientSession(sandbox.base_url) as session:
                    await scenario(sandbox, app, session)
        finally:
            await runner.cleanup()

    asyncio.run(main())


async def act(session: aiohttp.ClientSession, path: str, body: Any = None
              ) -> tuple[int, str, Any]:
    data = None if body is None else json.dumps(body)
    async with session.post(path, data=data, headers=JSON) as answer:
        return answer.status, answer.content_type, await answer.json()


async def create_message(session: aiohttp.ClientSession, to: str = TEXTER,
                         body: str = "hello") -> dict[str, Any]:
    form = {"To": to, "From": VALID_FROM, "Body": body}
    auth = {"Authorization": aiohttp.encode_basic_auth(ACCOUNT_SID, AUTH_TOKEN)}
    async with session.post(f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json", data=form,
                            headers=auth) as answer:
        assert answer.status == 201
        return await answer.json()


# --- the event mechanism ------------------------------------------------------------------


def test_a_tracked_record_reports_each_burst_of_changes_once_with_its_status_steps() -> None:
    seen: list[dict[str, Any]] = []

    async def scenario() -> None:
        record = Tracked({"sid": "SM1", "status": "queued"}, lambda r: seen.append(r.view()))
        record["status"] = "sent"
        record.update(status="delivered", error_code=None)
        await asyncio.sleep(0)
        assert len(seen) == 1
        record["price"] = "-0.0079"  # not a status: no new step
        await asyncio.sleep(0)

    asyncio.run(scenario())
    assert [step["status"] for step in seen[-1]["steps"]] == ["queued", "sent", "delivered"]
    assert len(seen) == 2
    assert json.loads(json.dumps(seen[-1]))["status"] == "delivered"


def test_events_carry_each_number_with_the_logs_masking() -> None:
    data = {"to": "+14155552671", "body": "call +442071838750 now", "sid": "SM1"}
    payload = json.loads(envelope(data))
    assert payload["data"] == data
    assert payload["masked"] == {"+14155552671": "+1•••••••2671",
                                 "+442071838750": "+44•••••••8750"}


def test_a_subscriber_that_falls_behind_is_told_to_start_over() -> None:
    async def scenario() -> list[Any]:
        hub = EventHub()
        with hub.subscribe() as events:
            for n in range(QUEUE_LIMIT + 5):
                hub.publish("message", {"n": n})
            hub.close()
            return [event async for event in events]

    received = asyncio.run(scenario())
    assert received[0] is RESYNC  # then only what came after the backlog was dropped
    assert [json.loads(e.data)["data"]["n"] for e in received[1:]] == list(
        range(QUEUE_LIMIT + 1, QUEUE_LIMIT + 5))


def test_history_is_bounded_for_messages_calls_and_webhooks() -> None:
    async def scenario(sandbox: TwilioSandbox, app: App, session: aiohttp.ClientSession) -> None:
        created = [await create_message(session) for _ in range(5)]
        assert [m["sid"] for m in sandbox.messages] == [m["sid"] for m in created[-3:]]
        for _ in range(4):
            await act(session, "/_sandbox/inbound/sms", {"from": TEXTER, "body": "hi"})
        assert len(sandbox.webhooks.records) == 3
        assert len(sandbox.messages) == 3
        async with session.get("/_sandbox/history") as answer:
            history = await answer.json()
        assert history["history"] == 3
        assert [w["id"] for w in history["webhooks"]] == [2, 3, 4]

    run(scenario, history=3)


def test_the_event_stream_sends_the_history_then_every_change() -> None:
    async def scenario(sandbox: TwilioSandbox, app: App, session: aiohttp.ClientSession) -> None:
        before = await create_message(session)
        async with session.get("/_sandbox/events") as stream:
            assert stream.content_type == "text/event-stream"
            events = read_events(stream)
            assert (await anext(events))[0] == "history"
            kind, page = await anext(events)
            assert (kind, page["data"]["kind"]) == ("history-page", "message")
            assert [m["sid"] for m in page["data"]["records"]] == [before["sid"]]
            assert page["masked"] == {TEXTER: mask(TEXTER), VALID_FROM: mask(VALID_FROM)}
            assert (await anext(events))[0] == "history-end"
            created = await create_message(session, to="+14155550100")
            kind, event = await anext(events)
            assert (kind, event["data"]["sid"], event["data"]["status"]) == (
                "message", created["sid"], "queued")
            status, _, _ = await act(session, f"/_sandbox/messages/{created['sid']}/status",
                                     {"status": "delivered"})
            assert status == 200
            kind, event = await anext(events)
            assert (kind, event["data"]["status"]) == ("message", "delivered")
            assert [s["status"] for s in event["data"]["steps"]] == ["queued", "delivered"]
            async with session.post("/_sandbox/faults", json={"kind": "drop"}):
                pass
            kind, event = await anext(events)
            assert (kind, event["data"]["faults"][0]["kind"]) == ("controls", "drop")
            async with session.post("/_sandbox/reset", headers=JSON):
                pass
            assert (await anext(events))[0] == "reset"

    run(scenario)


async def read_events(stream: aiohttp.ClientResponse, within: float = 10) -> Any:
    """(event name, parsed data) for each Server-Sent Event, pings skipped."""
    kind, data = "message", []
    async with asyncio.timeout(within):
        async for raw in stream.content:
            line = raw.decode().rstrip("\r\n")
            if line.startswith("event: "):
                kind = line[len("event: "):]
            elif line.startswith("data: "):
                data.append(line[len("data: "):])
            elif not line and data:
                yield kind, json.loads("\n".join(data))
                kind, data = "message", []


def test_stopping_the_sandbox_ends_open_streams() -> None:
    async def scenario() -> None:
        sandbox = TwilioSandbox(accounts={ACCOUNT_SID: AUTH_TOKEN})
        await sandbox.start()
        async with aiohttp.ClientSession(sandbox.base_url) as session, \
                session.get("/_sandbox/events") as stream:
            await stream.content.readline()
            async with asyncio.timeout(5):
                await sandbox.stop()
                assert await stream.content.read() is not None

    asyncio.run(scenario())


# --- playing Twilio's part ----------------------------------------------------------------


def test_an_inbound_sms_reaches_the_app_signed_and_its_reply_is_sent_back() -> None:
    async def scenario(sandbox: TwilioSandbox, app: App, session: aiohttp.ClientSession) -> None:
        status, _, outcome = await act(session, "/_sandbox/inbound/sms", {
            "from": TEXTER, "body": "Is it ready?",
            "media": [{"data": base64.b64encode(b"JFIF").decode(), "filename": "b.jpg"}]})
        assert status == 200, outcome
        [seen] = app.seen
        assert seen["valid"]
        params = seen["params"]
        message = outcome["message"]
        assert (params["From"], params["To"], params["Body"]) == (
            TEXTER, VALID_FROM, "Is it ready?")
        assert params["MessageSid"] == params["SmsSid"] == message["sid"]
        assert (params["AccountSid"], params["SmsStatus"], params["NumMedia"]) == (
            ACCOUNT_SID, "received", "1")
        assert params["MediaUrl0"].startswith(  # kept as Twilio keeps media (media.py)
            f"{sandbox.base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/MM")
        assert params["MediaContentType0"] == "image/jpeg"
        assert (message["direction"], message["status"]) == ("inbound", "received")
        webhook = outcome["webhook"]
        assert webhook["kind"] == "inbound-sms"
        assert webhook["headers"]["X-Twilio-Signature"] == seen["signature"]
        assert ["Body", "Is it ready?"] in webhook["params"]
        assert webhook["answer"]["status"] == 200
        assert webhook["answer"]["body"] == REPLY
        [reply] = outcome["replies"]
        assert (reply["from"], reply["to"], reply["body"]) == (
            VALID_FROM, TEXTER, "Got it & thanks")
        assert reply["request"]["MediaUrl"] == ["https://example.com/a.png"]
        assert reply["direction"] == "outbound-reply"
        assert [m["sid"] for m in sandbox.messages] == [message["sid"], reply["sid"]]
        # Twilio sends the reply like any message (no callbacks: nobody asked for them).
        async with asyncio.timeout(10):
            while sandbox.messages[1]["status"] != "delivered":  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        assert [s["status"] for s in sandbox.messages[1].steps] == ["queued", "sent", "delivered"]
        assert len(sandbox.webhooks.records) == 1

    run(scenario)


@pytest.mark.parametrize(("answer", "status", "error"), [
    ("<Response/>", 500, "11200"), ("not xml", 200, "12100")])
def test_an_inbound_sms_the_app_fails_keeps_the_message_and_says_why(
        answer: str, status: int, error: str) -> None:
    async def scenario(sandbox: TwilioSandbox, app: App, session: aiohttp.ClientSession) -> None:
        code, _, outcome = await act(session, "/_sandbox/inbound/sms",
                                     {"from": TEXTER, "body": "hi"})
        assert code == 200
        assert outcome["error"].startswith(error)
        assert outcome["replies"] == []
        assert outcome["webhook"]["answer"]["status"] == status
        assert len(sandbox.messages) == 1

    run(scenario, App(answer, status))


def test_messaging_twiml_replies_read_body_media_and_addresses() -> None:
    replies = parse_replies(
        '<Response><Message to="+14155550100" from="+15005550006"><Body>one</Body>'
        "<Media>https://example.com/1.png</Media></Message><Message>  two\n lines </Message>"
        "<Redirect>https://example.com/next</Redirect></Response>")
    assert replies == [
        {"body": "one", "media": ["https://example.com/1.png"], "to": "+14155550100",
         "from": "+15005550006"},
        {"body": "two lines", "media": [], "to": None, "from": None},
    ]
    with pytest.raises(ValueError, match="12102"):  # the root must be <Response>
        parse_replies("<Html/>")


def test_an_inbound_call_fetches_the_apps_twiml_as_an_inbound_call() -> None:
    app = App('<Response><Say voice="woman">Welcome</Say><Hangup/></Response>')

    async def scenario(sandbox: TwilioSandbox, app: App, session: aiohttp.ClientSession) -> None:
        status, _, outcome = await act(session, "/_sandbox/inbound/call", {"from": TEXTER})
        assert status == 200, outcome
        [seen] = app.seen
        assert seen["valid"]
        assert (seen["params"]["Direction"], seen["params"]["From"], seen["params"]["To"]) == (
            "inbound", TEXTER, VALID_FROM)
        call = outcome["call"]
        assert (call["direction"], call["status"]) == ("inbound", "completed")
        assert call["heard"] == [
            {"verb": "Say", "text": "Welcome", "voice": "woman", "language": None},
            {"verb": "Hangup"}]
        assert [s["status"] for s in call["steps"]] == ["ringing", "in-progress", "completed"]
        assert (outcome["webhook"]["kind"], outcome["webhook"]["sid"]) == ("twiml", call["sid"])

    run(scenario, app)


def test_pushing_a_status_moves_messages_and_calls_and_refuses_what_twilio_never_reports() -> None:
    async def scenario(sandbox: TwilioSandbox, app: App, session: aiohttp.ClientSession) -> None:
        sid = (await create_message(session))["sid"]
        path = f"/_sandbox/messages/{sid}/status"
        status, _, message = await act(session, path, {"status": "undelivered"})
        assert (status, message["error_code"], message["error_message"]) == (
            200, 30003, "Unreachable destination handset")
        status, _, message = await act(session, path, {"status": "failed", "error_code": 30007})
        assert (message["status"], message["error_code"]) == ("failed", 30007)
        status, _, message = await act(session, path, {"status": "delivered"})
        assert (message["status"], message["error_code"]) == ("delivered", None)
        for body, expected in [
            ({"status": "lost"}, 400), ({"status": "delivered", "error_code": 30003}, 400),
            ({"status": "undelivered", "error_code": 12345}, 400),
            ({"status": "undelivered", "error_code": True}, 400),
        ]:
            status, content_type, problem = await act(session, path, body)
            assert (status, content_type) == (expected, "application/problem+json"), body
            assert problem["status"] == expected
        status, _, problem = await act(session, "/_sandbox/messages/SMnope/status",
                                       {"status": "sent"})
        assert (status, problem["title"]) == (404, "Not found")
        _, _, outcome = await act(session, "/_sandbox/inbound/call", {"from": TEXTER})
        call_path = f"/_sandbox/calls/{outcome['call']['sid']}/status"
        status, _, call = await act(session, call_path, {"status": "busy"})
        assert (status, call["status"], call["duration"]) == (200, "busy", "0")
        assert (await act(session, call_path, {"status": "delivered"}))[0] == 400

    run(scenario)


def test_a_status_pushed_while_a_report_is_under_way_is_not_overwritten() -> None:
    async def scenario(sandbox: TwilioSandbox, app: App, session: aiohttp.ClientSession) -> None:
        form = {"To": TEXTER, "From": VALID_FROM, "Body": "hello",
                "StatusCallback": f"{app.base_url}/api/status_callback"}
        auth = {"Authorization": aiohttp.encode_basic_auth(ACCOUNT_SID, AUTH_TOKEN)}
        async with session.post(f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json",
                                data=form, headers=auth) as answer:
            sid = (await answer.json())["sid"]
        async with asyncio.timeout(10):
            while {"reported": "sent"} not in app.seen:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        # The app is still answering the "sent" report when the developer pushes.
        [lifecycle] = [task for task in asyncio.all_tasks() if task.get_name() == f"report {sid}"]
        status, _, _ = await act(session, f"/_sandbox/messages/{sid}/status",
                                 {"status": "undelivered", "error_code": 30005})
        assert status == 200
        async with asyncio.timeout(10):
            await lifecycle  # the message's own reports have ended, one way or the other
        assert sandbox.messages[0]["status"] == "undelivered"
        assert {"reported": "delivered"} not in app.seen

    run(scenario)


def test_a_logged_request_is_sent_again_byte_for_byte() -> None:
    async def scenario(sandbox: TwilioSandbox, app: App, session: aiohttp.ClientSession) -> None:
        _, _, outcome = await act(session, "/_sandbox/inbound/sms", {"from": TEXTER, "body": "hi"})
        first = outcome["webhook"]
        status, _, again = await act(session, f"/_sandbox/webhooks/{first['id']}/resend")
        assert status == 200, again
        assert (again["resent_from"], again["kind"], again["sid"]) == (
            first["id"], "inbound-sms", first["sid"])
        assert app.seen[0] == app.seen[1]  # same parameters, same valid signature
        assert app.seen[1]["valid"]
        assert again["answer"]["status"] == 200
        async with session.post("/_sandbox/webhooks/999/resend", headers=JSON) as answer:
            assert answer.status == 404

    run(scenario)


def test_a_page_on_another_port_cannot_resend_signed_webhooks_nor_reset() -> None:
    async def scenario(sandbox: TwilioSandbox, app: App, session: aiohttp.ClientSession) -> None:
        _, _, outcome = await act(session, "/_sandbox/inbound/sms", {"from": TEXTER, "body": "hi"})
        resend = f"/_sandbox/webhooks/{outcome['webhook']['id']}/resend"
        kept = len(sandbox.messages)
        elsewhere = {"Origin": "http://localhost:3000", **JSON}
        async with session.post(resend, data="{}", headers=elsewhere) as answer:
            assert (answer.status, answer.content_type) == (403, "application/problem+json")
        async with session.post("/_sandbox/reset", data="{}",
                                headers={"Content-Type": "text/plain"}) as answer:
            assert answer.status == 415  # all a page elsewhere can send without asking
        assert len(app.seen) == 1  # sent once, never again
        assert len(sandbox.messages) == kept
        own = {"Origin": sandbox.base_url, **JSON}
        async with session.post(resend, data="{}", headers=own) as answer:
            assert answer.status == 200
        assert len(app.seen) == 2

    run(scenario)


def test_the_console_posts_to_the_app_as_the_mobile_app_with_its_key() -> None:
    async def scenario(sandbox: TwilioSandbox, app: App, session: aiohttp.ClientSession) -> None:
        sandbox.app.key = "local-key"
        status, _, record = await act(session, "/_sandbox/app/send_sms",
                                      {"to": TEXTER, "body": "hi"})
        assert status == 200
        assert app.seen == [{"json": {"to": TEXTER, "body": "hi"}, "key": "local-key"}]
        assert (record["kind"], record["sid"], record["answer"]["status"]) == (
            "app", "SM" + "9" * 32, 201)
        assert record["headers"]["x-functions-key"] == "•••"  # shown as sent, never its value
        assert "local-key" not in json.dumps(record)
        assert (await act(session, "/_sandbox/app/twiml", {}))[0] == 404

    run(scenario)


def test_actions_take_json_only_and_say_what_is_wrong() -> None:
    async def scenario(sandbox: TwilioSandbox, app: App, session: aiohttp.ClientSession) -> None:
        async with session.post("/_sandbox/inbound/sms", data="from=+14155550123") as answer:
            assert (answer.status, answer.content_type) == (415, "application/problem+json")
        async with session.post("/_sandbox/inbound/sms", data="{",
                                headers={"Content-Type": "application/json"}) as answer:
            assert answer.status == 400
        for body in ({"from": "12345", "body": "x"}, {"from": TEXTER},
                     {"from": TEXTER, "body": "x", "media_url": ["ftp://x"]}, ["list"]):
            status, _, problem = await act(session, "/_sandbox/inbound/sms", body)
            assert status == 400, body
            assert problem["detail"]
        assert app.seen == []

    run(scenario)


def test_without_the_apps_address_inbound_traffic_is_refused_with_409() -> None:
    async def scenario() -> None:
        async with TwilioSandbox(accounts={ACCOUNT_SID: AUTH_TOKEN}) as sandbox, \
                aiohttp.ClientSession(sandbox.base_url) as session:
            status, _, problem = await act(session, "/_sandbox/inbound/sms",
                                           {"from": TEXTER, "body": "hi"})
            assert status == 409
            assert "--app-url" in problem["detail"]
            assert sandbox.messages == []

    asyncio.run(scenario())


def test_a_request_the_app_never_answers_is_logged_with_its_error() -> None:
    async def scenario(sandbox: TwilioSandbox, app: App, session: aiohttp.ClientSession) -> None:
        gone = await App().start()
        sandbox.app.functions["twiml"] = f"http://{gone.addresses[0][0]}:{gone.addresses[0][1]}/"
        await gone.cleanup()  # nothing listens there any more
        status, _, outcome = await act(session, "/_sandbox/inbound/sms",
                                       {"from": TEXTER, "body": "x"})
        assert status == 200
        assert outcome["webhook"]["answer"] is None
        assert "Connect" in outcome["webhook"]["error"]
        assert outcome["error"].startswith("11200")

    run(scenario)


def test_the_page_and_its_assets_are_served() -> None:
    async def scenario(sandbox: TwilioSandbox, app: App, session: aiohttp.ClientSession) -> None:
        async with session.get("/console", allow_redirects=False) as answer:
            assert (answer.status, answer.headers["Location"]) == (302, "/console/")
        for path, media_type in [("/console/", "text/html"), ("/console/console.js",
                                 "text/javascript"), ("/console/console.css", "text/css")]:
            async with session.get(path) as answer:
                assert (answer.status, answer.content_type) == (200, media_type)
                # Its own files only, in no other site's frame (console.js links http(s) only).
                assert answer.headers["Content-Security-Policy"] == (
                    "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
        async with session.get("/console/../sandbox.py") as answer:
            assert answer.status == 404
        async with session.get("/") as answer:
            assert "/console/" in await answer.text()

    run(scenario)


def test_make_run_prints_the_console_and_connects_it_to_the_app() -> None:
    app = LiveApp({"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                   "SMS_REPLY_MESSAGE": ""})
    try:
        printed = "".join(app.stdout_lines)
        console = f"{app.sandbox_url}/console/".replace("127.0.0.1", "localhost")
        assert console in printed
        history = app.sandbox("GET", "/_sandbox/history")
        assert history["app"]["functions"]["twiml"] == f"{app.base_url}/api/twiml"
        outcome = app.sandbox("POST", "/_sandbox/inbound/sms", {"from": TEXTER, "body": "hi"})
        assert outcome["webhook"]["answer"]["status"] == 200  # the real twiml, signed
        assert outcome["replies"] == []  # SMS_REPLY_MESSAGE unset: no reply
    finally:
        assert app.stop() == 0


# --- bounds: what the sandbox reads and keeps ------------------------------------------------


def test_an_apps_answer_is_read_only_up_to_its_cap() -> None:
    async def scenario(sandbox: TwilioSandbox, app: App, session: aiohttp.ClientSession) -> None:
        status, _, outcome = await act(session, "/_sandbox/inbound/sms", {
            "from": TEXTER, "body": "hi", "url": f"{app.base_url}/api/twiml"})
        assert status == 200, outcome
        answer = outcome["webhook"]["answer"]
        assert (answer["status"], answer["complete"]) == (200, False)
        assert len(answer["body"]) == MAX_SHOWN
        assert len(sandbox.webhooks.records[-1].answer_text) == MAX_ANSWER
        assert outcome["error"]  # the TwiML, cut short, is no document

    run(scenario, App(answer="<Response>" + " " * 4 * MAX_ANSWER + "</Response>"))


def test_a_request_sent_with_a_body_over_the_cap_is_shown_but_cannot_be_resent() -> None:
    async def scenario(sandbox: TwilioSandbox, app: App, session: aiohttp.ClientSession) -> None:
        status, _, large = await act(session, "/_sandbox/app/send_sms",
                                     {"to": TEXTER, "body": "x" * MAX_RESENT})
        assert status == 200
        assert (large["resendable"], large["body_complete"]) == (False, False)
        assert len(large["body"]) == MAX_SHOWN
        assert sandbox.webhooks.find(large["id"]).sent is None  # none of it kept
        assert len(app.seen[0]["json"]["body"]) == MAX_RESENT  # the app got it all
        status, _, problem = await act(session, f"/_sandbox/webhooks/{large['id']}/resend")
        assert status == 409
        assert "64 KiB" in problem["detail"]
        _, _, small = await act(session, "/_sandbox/app/send_sms", {"to": TEXTER, "body": "hi"})
        assert small["resendable"] is True
        assert (await act(session, f"/_sandbox/webhooks/{small['id']}/resend"))[0] == 200
        assert len(app.seen) == 3

    run(scenario)


def test_only_an_inbound_sms_may_send_more_than_a_mebibyte() -> None:
    media = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(1536 * 1024)).decode()  # 2 MiB

    async def scenario(sandbox: TwilioSandbox, app: App, session: aiohttp.ClientSession) -> None:
        status, _, outcome = await act(session, "/_sandbox/inbound/sms",
                                       {"from": TEXTER, "media": [{"data": media}]})
        assert status == 200, outcome
        for path, body in [("/_sandbox/messaging_services", {"sid": media}),
                           ("/_sandbox/app/send_sms", {"to": TEXTER, "body": media})]:
            async with session.post(path, data=json.dumps(body), headers=JSON) as answer:
                assert (answer.status, answer.content_type) == (413, "application/problem+json")
        auth = {"Authorization": aiohttp.encode_basic_auth(ACCOUNT_SID, AUTH_TOKEN)}
        async with session.post(f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json",
                                data={"To": TEXTER, "From": VALID_FROM, "Body": media},
                                headers=auth) as answer:
            assert answer.status == 413
        assert len(app.seen) == 1

    run(scenario)


async def unfinished_post(base_url: str, path: str, headers: dict[str, str]) -> bytes:
    """POST a body that stops short of its Content-Length: the head of the answer."""
    host, port = base_url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        writer.write(f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{head}"
                     "Content-Length: 1000\r\n\r\nTo=%2B1".encode())
        async with asyncio.timeout(10):
            return await reader.readuntil(b"\r\n\r\n")
    finally:
        writer.close()


def test_a_body_that_never_comes_is_refused_after_credentials_and_a_deadline(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bodies, "BODY_TIMEOUT_SECONDS", 0.2)
    messages = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    form = {"Content-Type": "application/x-www-form-urlencoded"}

    async def scenario(sandbox: TwilioSandbox, app: App, session: aiohttp.ClientSession) -> None:
        wrong = {"Authorization": aiohttp.encode_basic_auth(ACCOUNT_SID, "wrong"), **form}
        assert (await unfinished_post(sandbox.base_url, messages, wrong)).startswith(
            b"HTTP/1.1 401")  # at once: the body is not waited for
        right = {"Authorization": aiohttp.encode_basic_auth(ACCOUNT_SID, AUTH_TOKEN), **form}
        assert (await unfinished_post(sandbox.base_url, messages, right)).startswith(
            b"HTTP/1.1 408")
        assert (await unfinished_post(sandbox.base_url, "/_sandbox/inbound/sms", JSON)
                ).startswith(b"HTTP/1.1 408")
        assert sandbox.messages == []

    run(scenario)


def test_sandbox_answers_are_for_its_own_pages_only() -> None:
    async def scenario(sandbox: TwilioSandbox, app: App, session: aiohttp.ClientSession) -> None:
        for path in ("/_sandbox/history", "/_sandbox/state"):
            async with session.get(path) as answer:
                assert answer.status == 200
                assert answer.headers["Cross-Origin-Resource-Policy"] == "same-origin"
        for site in ("same-origin", "none"):
            async with session.get("/_sandbox/history", headers={"Sec-Fetch-Site": site}) as got:
                assert got.status == 200
        for site in ("same-site", "cross-site", "anything"):
            async with session.get("/_sandbox/history", headers={"Sec-Fetch-Site": site}) as got:
                assert (got.status, got.content_type) == (403, "application/problem+json")
            async with session.post("/_sandbox/reset", data="{}",
                                    headers={"Sec-Fetch-Site": site, **JSON}) as answer:
                assert answer.status == 403
        assert len(sandbox.messages) == 0

    run(scenario)


@pytest.mark.parametrize(("path", "body"), [
    ("/_sandbox/inbound/call", {"from": TEXTER, "application_sid": [1]}),
    ("/_sandbox/inbound/call", {"from": TEXTER, "url": 5}),
    ("/_sandbox/inbound/sms", {"from": TEXTER, "body": "hi", "url": 5}),
    ("/_sandbox/inbound/sms", {"from": TEXTER, "body": "hi", "url": "javascript:alert(1)"}),
])
def test_fields_of_the_wrong_type_are_400_not_500(path: str, body: dict[str, Any]) -> None:
    async def scenario(sandbox: TwilioSandbox, app: App, session: aiohttp.ClientSession) -> None:
        status, media_type, problem = await act(session, path, body)
        assert (status, media_type) == (400, "application/problem+json"), problem
        assert problem["detail"]
        assert app.seen == [] and sandbox.messages == [] and sandbox.calls == []

    run(scenario)
