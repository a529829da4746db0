"""The Twilio sandbox, driven the way the app drives Twilio: through twilio-python.

Each test runs its own sandbox on a free loopback port inside ``asyncio.run``; the
synchronous Twilio client runs in a worker thread so the sandbox keeps serving.
"""

import asyncio
import json
import random
import re
import signal
import sys
import time
import xml.sax.saxutils
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import requests
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st
from stub_server import serve
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from devhost import children
from twilio_sandbox import MAGIC_NUMBERS, VALID_FROM, Fault, MagicNumber, TwilioSandbox
from twilio_sandbox.__main__ import parse_args
from twilio_sandbox.callbacks import TwimlError, parse_twiml
from twilio_sandbox.resources import SANDBOX_KEYS, num_segments
from twilio_sandbox.server import HEADER_TIMEOUT_SECONDS, build_app

ROOT = Path(__file__).resolve().parents[1]
ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "sandbox-auth-token"
KEY_SID = "SK" + "2" * 32
KEY_SECRET = "sandbox-key-secret"
OTHER_ACCOUNT_SID = "AC" + "3" * 32
OTHER_AUTH_TOKEN = "other-auth-token"
SERVICE_SID = "MG" + "4" * 32
CUSTOMER = "+14155550100"  # a To without a magic-number row: passes
STRANGER = "+14155550199"  # a From without its own row: "any other From"
ACCOUNT_PATH = f"/2010-04-01/Accounts/{ACCOUNT_SID}"
SID = {"SM": re.compile(r"SM[0-9a-f]{32}"), "CA": re.compile(r"CA[0-9a-f]{32}")}
ERROR_KEYS = {"code", "message", "more_info", "status"}
#: What every request that changes the sandbox carries, a body-less one too.
JSON = {"Content-Type": "application/json"}
TWIML = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Response><Say voice="woman">ahoy &amp; hello</Say>'
    "<Play>https://example.com/a.mp3</Play></Response>"
)
HEARD = [
    {"verb": "Say", "text": "ahoy & hello", "voice": "woman", "language": None},
    {"verb": "Play", "url": "https://example.com/a.mp3"},
]


class SandboxHttpClient(TwilioHttpClient):
    """twilio-python's own HTTP client, sending to the sandbox instead of api.twilio.com."""

    ORIGIN = "https://api.twilio.com"

    def __init__(self, base_url: str) -> None:
        super().__init__(timeout=30)
        self.base_url = base_url

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        if url.startswith(self.ORIGIN):
            url = self.base_url + url[len(self.ORIGIN) :]
        return super().request(method, url, *args, **kwargs)


def run[T](scenario: Callable[[TwilioSandbox], Awaitable[T]], **options: Any) -> T:
    """Run ``scenario`` against a fresh sandbox with the test accounts and key."""

    async def main() -> T:
        sandbox = TwilioSandbox(
            accounts={ACCOUNT_SID: AUTH_TOKEN, OTHER_ACCOUNT_SID: OTHER_AUTH_TOKEN},
            api_keys={KEY_SID: (KEY_SECRET, ACCOUNT_SID)},
            **options,
        )
        async with sandbox:
            return await scenario(sandbox)

    return asyncio.run(main())


def twilio(
    sandbox: TwilioSandbox,
    user: str = ACCOUNT_SID,
    password: str = AUTH_TOKEN,
    account_sid: str = ACCOUNT_SID,
) -> Client:
    return Client(user, password, account_sid, http_client=SandboxHttpClient(sandbox.base_url))


def auth_headers(user: str = ACCOUNT_SID, password: str = AUTH_TOKEN) -> dict[str, str]:
    return {"Authorization": aiohttp.encode_basic_auth(user, password)}


async def in_thread[T](call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await asyncio.to_thread(call, *args, **kwargs)


async def refused(call: Callable[..., object], **kwargs: Any) -> TwilioRestException:
    """The TwilioRestException a client call raises (failing the test when it does not)."""
    with pytest.raises(TwilioRestException) as caught:
        await in_thread(call, **kwargs)
    return caught.value


async def until(condition: Callable[[], bool]) -> None:
    """Wait for state this loop's sandbox changes (the timeout is a safety net only)."""
    async with asyncio.timeout(30):
        while not condition():  # noqa: ASYNC110 - that state has no event to wait on
            await asyncio.sleep(0.005)


async def post(
    session: aiohttp.ClientSession, url: str, form: Any, **kwargs: Any
) -> tuple[int, Any]:
    async with session.post(url, data=form, headers=auth_headers(), **kwargs) as answer:
        return answer.status, await answer.json(content_type=None)


# --- creating messages and calls -------------------------------------------------


def test_message_is_created_with_twilio_shape_and_stored_request() -> None:
    media = ["https://example.com/a.png", "https://example.com/b.png"]

    async def scenario(sandbox: TwilioSandbox) -> None:
        client = twilio(sandbox)
        message = await in_thread(
            client.messages.create, to=CUSTOMER, from_=VALID_FROM, body="hello", media_url=media
        )
        assert SID["SM"].fullmatch(message.sid)
        assert (message.account_sid, message.to, message.from_) == (
            ACCOUNT_SID,
            CUSTOMER,
            VALID_FROM,
        )
        assert (message.status, message.direction, message.api_version) == (
            "queued",
            "outbound-api",
            "2010-04-01",
        )
        assert (message.body, message.num_media, message.num_segments) == ("hello", "2", "1")
        assert message.price is None
        assert message.date_created is not None
        assert message.uri == f"{ACCOUNT_PATH}/Messages/{message.sid}.json"
        [stored] = sandbox.messages
        assert stored["sid"] == message.sid
        assert stored["request"] == {
            "To": CUSTOMER,
            "From": VALID_FROM,
            "Body": "hello",
            "MediaUrl": media,
        }
        fetched = await in_thread(client.messages(message.sid).fetch)
        assert (fetched.sid, fetched.body) == (message.sid, "hello")

    run(scenario)


def test_rest_answers_leave_out_what_only_the_sandbox_keeps() -> None:
    async def scenario(sandbox: TwilioSandbox) -> None:
        form = {"To": CUSTOMER, "From": VALID_FROM, "Url": "https://example.com/voice"}
        async with aiohttp.ClientSession() as session:
            status, body = await post(session, f"{sandbox.base_url}{ACCOUNT_PATH}/Calls.json", form)
        assert status == 201
        assert not SANDBOX_KEYS & set(body)
        assert set(sandbox.calls[0]) >= SANDBOX_KEYS

    run(scenario, fetch_twiml=False)


def test_message_through_a_messaging_service_is_accepted() -> None:
    async def scenario(sandbox: TwilioSandbox) -> None:
        message = await in_thread(
            twilio(sandbox).messages.create,
            to=CUSTOMER,
            messaging_service_sid=SERVICE_SID,
            body="via service",
        )
        assert (message.status, message.messaging_service_sid, message.from_) == (
            "accepted",
            SERVICE_SID,
            None,
        )
        assert sandbox.messages[0]["request"]["MessagingServiceSid"] == SERVICE_SID

    run(scenario)


def test_call_is_created_queued_with_stored_request() -> None:
    async def scenario(sandbox: TwilioSandbox) -> None:
        call = await in_thread(
            twilio(sandbox).calls.create,
            to=CUSTOMER,
            from_=VALID_FROM,
            url="https://example.com/voice",
            method="GET",
        )
        assert SID["CA"].fullmatch(call.sid)
        assert (call.status, call.direction, call.api_version) == (
            "queued",
            "outbound-api",
            "2010-04-01",
        )
        assert (call.to, call._from, call.from_formatted) == (
            CUSTOMER,
            VALID_FROM,
            "(500) 555-0006",
        )
        stored = await sandbox.wait_for_twiml(call.sid)  # nothing to fetch: returns at once
        assert stored["status"] == "queued"
        assert stored["request"]["Url"] == "https://example.com/voice"
        assert stored["request"]["Method"] == "GET"

    run(scenario, fetch_twiml=False)


# --- authentication ----------------------------------------------------------------


def test_api_key_authenticates_for_its_account() -> None:
    async def scenario(sandbox: TwilioSandbox) -> None:
        client = twilio(sandbox, KEY_SID, KEY_SECRET)
        message = await in_thread(
            client.messages.create, to=CUSTOMER, from_=VALID_FROM, body="by key"
        )
        assert message.account_sid == ACCOUNT_SID
        assert len(sandbox.messages) == 1

    run(scenario)


@pytest.mark.parametrize(
    ("user", "password", "account_sid", "status", "code"),
    [
        (KEY_SID, "wrong-secret", ACCOUNT_SID, 401, 20003),
        (ACCOUNT_SID, "wrong-token", ACCOUNT_SID, 401, 20003),
        ("AC" + "9" * 32, AUTH_TOKEN, ACCOUNT_SID, 401, 20003),
        (OTHER_ACCOUNT_SID, OTHER_AUTH_TOKEN, ACCOUNT_SID, 403, 20003),
        (ACCOUNT_SID, AUTH_TOKEN, "AC" + "9" * 32, 404, 20404),
    ],
    ids=["wrong-key-secret", "wrong-token", "unknown-user", "other-account", "unknown-account"],
)
def test_bad_credentials_are_refused(
    user: str, password: str, account_sid: str, status: int, code: int
) -> None:
    async def scenario(sandbox: TwilioSandbox) -> None:
        client = twilio(sandbox, user, password, account_sid)
        error = await refused(client.messages.create, to=CUSTOMER, from_=VALID_FROM, body="x")
        assert (error.status, error.code) == (status, code)
        assert sandbox.messages == []

    run(scenario)


@pytest.mark.parametrize("header", [None, "Bearer abc", "Basic not-base64!"])
def test_missing_or_malformed_authorization_is_401(header: str | None) -> None:
    async def scenario(sandbox: TwilioSandbox) -> None:
        headers = {"Authorization": header} if header else {}
        url = f"{sandbox.base_url}{ACCOUNT_PATH}/Messages.json"
        async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as answer:
            assert answer.status == 401
            assert (await answer.json())["code"] == 20003

    run(scenario)


# --- magic numbers and validation ------------------------------------------------------


def _magic_id(row: MagicNumber) -> str:
    return f"{row.resource}-{row.param}-{row.number or 'other'}-{row.code or 'ok'}"


@pytest.mark.parametrize("row", MAGIC_NUMBERS, ids=_magic_id)
def test_magic_numbers_answer_like_twilio_test_credentials(row: MagicNumber) -> None:
    number = row.number or (STRANGER if row.param == "From" else CUSTOMER)
    sender, to = (number, CUSTOMER) if row.param == "From" else (VALID_FROM, number)

    async def scenario(sandbox: TwilioSandbox) -> None:
        client = twilio(sandbox)
        if row.resource == "message":
            create, kwargs, stored = client.messages.create, {"body": "hi"}, sandbox.messages
        else:
            create, kwargs, stored = client.calls.create, {"twiml": "<Response/>"}, sandbox.calls
        if row.code is None:
            created = await in_thread(create, to=to, from_=sender, **kwargs)
            assert [item["sid"] for item in stored] == [created.sid]
        else:
            error = await refused(create, to=to, from_=sender, **kwargs)
            assert (error.status, error.code) == (400, row.code)
            assert number in error.msg or "{number}" not in row.message
            assert stored == []

    run(scenario, fetch_twiml=False)


def test_any_other_message_sender_is_refused_but_not_any_recipient() -> None:
    async def scenario(sandbox: TwilioSandbox) -> None:
        client = twilio(sandbox)
        error = await refused(client.messages.create, to=CUSTOMER, from_=STRANGER, body="x")
        assert error.code == 21606
        message = await in_thread(
            client.messages.create, to="+442079460958", from_=VALID_FROM, body="x"
        )
        assert message.status == "queued"

    run(scenario)


MESSAGE_OK = {"To": CUSTOMER, "From": VALID_FROM, "Body": "hi"}
CALL_OK = {"To": CUSTOMER, "From": VALID_FROM, "Url": "https://example.com/voice"}


def _without(form: dict[str, str], *names: str, **changes: str) -> dict[str, str]:
    return {key: value for key, value in form.items() if key not in names} | changes


@pytest.mark.parametrize(
    ("resource", "form", "code"),
    [
        ("Messages", _without(MESSAGE_OK, "To"), 21604),
        ("Messages", _without(MESSAGE_OK, "From"), 21603),
        ("Messages", _without(MESSAGE_OK, "Body"), 21602),
        ("Messages", _without(MESSAGE_OK, Body="x" * 1601), 21617),
        ("Messages", _without(MESSAGE_OK, "From", MessagingServiceSid="MG123"), 21705),
        ("Calls", _without(CALL_OK, "To"), 21201),
        ("Calls", _without(CALL_OK, "From"), 21213),
        ("Calls", _without(CALL_OK, "Url"), 21200),  # docs/api/errors/21200
        ("Calls", _without(CALL_OK, Url="/relative/path"), 21205),
        ("Calls", _without(CALL_OK, Method="PUT"), 21209),
    ],
    ids=[
        "message-no-to",
        "message-no-from",
        "message-no-body",
        "message-body-too-long",
        "message-bad-service-sid",
        "call-no-to",
        "call-no-from",
        "call-no-url",
        "call-relative-url",
        "call-bad-method",
    ],
)
def test_invalid_requests_get_twilio_error_json(
    resource: str, form: dict[str, str], code: int
) -> None:
    async def scenario(sandbox: TwilioSandbox) -> None:
        url = f"{sandbox.base_url}{ACCOUNT_PATH}/{resource}.json"
        async with aiohttp.ClientSession() as session:
            status, body = await post(session, url, form)
        assert status == 400
        assert set(body) == ERROR_KEYS
        assert (body["status"], body["code"]) == (400, code)
        assert body["more_info"] == f"https://www.twilio.com/docs/errors/{code}"
        assert sandbox.messages == sandbox.calls == []

    run(scenario)


def test_body_of_exactly_1600_characters_is_accepted() -> None:
    async def scenario(sandbox: TwilioSandbox) -> None:
        message = await in_thread(
            twilio(sandbox).messages.create, to=CUSTOMER, from_=VALID_FROM, body="x" * 1600
        )
        assert message.num_segments == "11"

    run(scenario)


@pytest.mark.parametrize(
    ("body", "segments"),
    [("hi", 1), ("x" * 160, 1), ("x" * 161, 2), ("{" * 80, 1), ("{" * 81, 2), ("ж" * 70, 1),
     ("ж" * 71, 2), ("", 1)],
)  # fmt: skip
def test_segments_follow_gsm7_and_ucs2_limits(body: str, segments: int) -> None:
    assert num_segments(body) == segments


# --- lists and fetches -------------------------------------------------------------------


def test_lists_are_newest_first_in_twilio_page_shape() -> None:
    async def scenario(sandbox: TwilioSandbox) -> None:
        client = twilio(sandbox)
        sids = [
            (
                await in_thread(client.messages.create, to=CUSTOMER, from_=VALID_FROM, body=f"{n}")
            ).sid
            for n in range(3)
        ]
        call = await in_thread(
            client.calls.create, to=CUSTOMER, from_=VALID_FROM, twiml="<Response/>"
        )
        listed = await in_thread(client.messages.list, page_size=2)  # follows next_page_uri
        assert [message.sid for message in listed] == sids[::-1]
        assert [c.sid for c in await in_thread(client.calls.list)] == [call.sid]
        other = twilio(sandbox, OTHER_ACCOUNT_SID, OTHER_AUTH_TOKEN, OTHER_ACCOUNT_SID)
        assert await in_thread(other.messages.list) == []

        url = f"{sandbox.base_url}{ACCOUNT_PATH}/Messages.json?PageSize=2"
        async with (
            aiohttp.ClientSession() as session,
            session.get(url, headers=auth_headers()) as answer,
        ):
            page = await answer.json()
        assert answer.status == 200
        assert [message["sid"] for message in page["messages"]] == sids[:0:-1]
        assert (page["page"], page["page_size"], page["start"], page["end"]) == (0, 2, 0, 1)
        assert (
            page["uri"]
            == page["first_page_uri"]
            == f"{ACCOUNT_PATH}/Messages.json?PageSize=2&Page=0"
        )
        assert page["next_page_uri"] == (  # Twilio's PageToken: PA and the last SID read
            f"{ACCOUNT_PATH}/Messages.json?PageSize=2&Page=1&PageToken=PA{sids[1]}")
        assert page["previous_page_uri"] is None

    run(scenario, fetch_twiml=False)


def test_lists_filter_by_to() -> None:
    async def scenario(sandbox: TwilioSandbox) -> None:
        client = twilio(sandbox)
        for to in (CUSTOMER, "+14155550101"):
            await in_thread(client.messages.create, to=to, from_=VALID_FROM, body="x")
        listed = await in_thread(client.messages.list, to="+14155550101")
        assert [message.to for message in listed] == ["+14155550101"]

    run(scenario)


@pytest.mark.parametrize("resource", ["messages", "calls"])
def test_fetching_an_unknown_sid_is_404(resource: str) -> None:
    async def scenario(sandbox: TwilioSandbox) -> None:
        client = twilio(sandbox)
        prefix = "SM" if resource == "messages" else "CA"
        error = await refused(getattr(client, resource)(prefix + "0" * 32).fetch)
        assert (error.status, error.code) == (404, 20404)

    run(scenario)


def test_unknown_rest_path_is_twilio_404() -> None:
    async def scenario(sandbox: TwilioSandbox) -> None:
        url = f"{sandbox.base_url}{ACCOUNT_PATH}/Queues.json"
        async with (
            aiohttp.ClientSession() as session,
            session.get(url, headers=auth_headers()) as answer,
        ):
            body = await answer.json()
        assert (answer.status, body["code"], body["status"]) == (404, 20404, 404)

    run(scenario)


# --- faults ------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "code"), [(500, 20500), (503, 20503), (401, 20003)])
def test_status_fault_answers_twilio_error_once(status: int, code: int) -> None:
    async def scenario(sandbox: TwilioSandbox) -> None:
        sandbox.add_fault(Fault("status", status=status, count=1))
        client = twilio(sandbox)
        error = await refused(client.messages.create, to=CUSTOMER, from_=VALID_FROM, body="x")
        assert (error.status, error.code) == (status, code)
        assert sandbox.messages == []
        await in_thread(client.messages.create, to=CUSTOMER, from_=VALID_FROM, body="x")
        assert len(sandbox.messages) == 1
        assert sandbox.faults_applied["status"] == 1
        assert sandbox.faults == []

    run(scenario)


def test_rate_limit_fault_sends_retry_after() -> None:
    async def scenario(sandbox: TwilioSandbox) -> None:
        sandbox.add_fault(Fault("rate_limit", retry_after=7))
        url = f"{sandbox.base_url}{ACCOUNT_PATH}/Messages.json"
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, data=MESSAGE_OK, headers=auth_headers()) as answer,
        ):
            body = await answer.json()
        assert answer.status == 429
        assert answer.headers["Retry-After"] == "7"
        assert (body["code"], body["status"]) == (20429, 429)
        assert sandbox.messages == []
        assert sandbox.faults_applied["rate_limit"] == 1

    run(scenario)


def test_delay_fault_answers_normally_after_the_delay() -> None:
    async def scenario(sandbox: TwilioSandbox) -> None:
        sandbox.add_fault(Fault("delay", delay=0.2, count=1))
        message = await in_thread(
            twilio(sandbox).messages.create, to=CUSTOMER, from_=VALID_FROM, body="late"
        )
        assert [stored["sid"] for stored in sandbox.messages] == [message.sid]
        assert sandbox.faults_applied["delay"] == 1

    run(scenario)


def test_delayed_request_is_recorded_even_when_the_client_gave_up() -> None:
    async def scenario(sandbox: TwilioSandbox) -> None:
        sandbox.add_fault(Fault("delay", delay=0.3))
        url = f"{sandbox.base_url}{ACCOUNT_PATH}/Messages.json"
        async with aiohttp.ClientSession() as session:
            request = asyncio.create_task(post(session, url, MESSAGE_OK))
            await until(lambda: sandbox.faults_applied["delay"] == 1)  # read, now delayed
            request.cancel()  # the client gives up and hangs up
            with pytest.raises(asyncio.CancelledError):
                await request
        await sandbox.wait_idle(timeout=30)
        assert [message["body"] for message in sandbox.messages] == ["hi"]

    run(scenario)


def test_drop_fault_closes_the_connection_without_an_answer() -> None:
    async def scenario(sandbox: TwilioSandbox) -> None:
        sandbox.add_fault(Fault("drop", count=2))
        url = f"{sandbox.base_url}{ACCOUNT_PATH}/Messages.json"
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.ClientConnectionError):
                await post(session, url, MESSAGE_OK)
        with pytest.raises(requests.ConnectionError):
            await in_thread(
                twilio(sandbox).messages.create, to=CUSTOMER, from_=VALID_FROM, body="x"
            )
        assert sandbox.messages == []
        assert sandbox.faults_applied["drop"] == 2

    run(scenario)


def test_malformed_fault_answers_201_that_is_not_json() -> None:
    async def scenario(sandbox: TwilioSandbox) -> None:
        sandbox.add_fault(Fault("malformed"))
        url = f"{sandbox.base_url}{ACCOUNT_PATH}/Messages.json"
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, data=MESSAGE_OK, headers=auth_headers()) as answer,
        ):
            text = await answer.text()
        assert answer.status == 201
        assert answer.content_type == "application/json"
        with pytest.raises(json.JSONDecodeError):
            json.loads(text)
        assert sandbox.messages == []

    run(scenario)


def test_fault_path_filter_spares_other_endpoints() -> None:
    async def scenario(sandbox: TwilioSandbox) -> None:
        sandbox.add_fault(Fault("status", status=503, path_contains="Calls.json"))
        client = twilio(sandbox)
        await in_thread(client.messages.create, to=CUSTOMER, from_=VALID_FROM, body="x")
        error = await refused(
            client.calls.create, to=CUSTOMER, from_=VALID_FROM, twiml="<Response/>"
        )
        assert error.status == 503
        assert (len(sandbox.messages), len(sandbox.calls)) == (1, 0)

    run(scenario, fetch_twiml=False)


def test_probability_fault_hits_a_seeded_reproducible_subset() -> None:
    expected_draws = random.Random(42)
    expected = [expected_draws.random() < 0.5 for _ in range(20)]

    async def scenario(sandbox: TwilioSandbox) -> None:
        sandbox.add_fault(Fault("status", status=500, probability=0.5, seed=42))
        url = f"{sandbox.base_url}{ACCOUNT_PATH}/Messages.json"
        hits = []
        async with aiohttp.ClientSession() as session:
            for _ in expected:
                status, _body = await post(session, url, MESSAGE_OK)
                hits.append(status == 500)
        assert hits == expected
        assert sandbox.faults_applied["status"] == sum(expected)
        assert len(sandbox.messages) == len(expected) - sum(expected)

    run(scenario)


def test_faults_never_touch_control_endpoints() -> None:
    async def scenario(sandbox: TwilioSandbox) -> None:
        sandbox.add_fault(Fault("drop"))
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{sandbox.base_url}/_sandbox/state") as answer:
                assert answer.status == 200
            async with session.get(f"{sandbox.base_url}/") as answer:
                assert "Nothing real is sent" in await answer.text()
        assert sandbox.faults_applied["drop"] == 0

    run(scenario)


@pytest.mark.parametrize(
    "fields",
    [{"kind": "explode"}, {"kind": "status", "status": 200}, {"kind": "delay", "when": 1},
     {"kind": "drop", "count": 0}, {"kind": "drop", "probability": 2},
     {"kind": "drop", "count": True}, {"status": 500}, ["drop"]],
)  # fmt: skip
def test_invalid_faults_are_refused(fields: Any) -> None:
    async def scenario(sandbox: TwilioSandbox) -> None:
        url = f"{sandbox.base_url}/_sandbox/faults"
        async with aiohttp.ClientSession() as session, session.post(url, json=fields) as answer:
            assert answer.status == 400
        assert sandbox.faults == []

    run(scenario)


def test_control_endpoints_drive_another_process_sandbox() -> None:
    async def scenario(sandbox: TwilioSandbox) -> None:
        base = f"{sandbox.base_url}/_sandbox"
        async with aiohttp.ClientSession() as session:
            fault = {"kind": "status", "status": 503, "count": 1, "path_contains": "Messages"}
            async with session.post(f"{base}/faults", json=fault) as answer:
                assert answer.status == 201
            assert [f.to_json() for f in sandbox.faults] == [
                Fault("status", status=503, count=1, path_contains="Messages").to_json()
            ]
            url = f"{sandbox.base_url}{ACCOUNT_PATH}/Messages.json"
            assert (await post(session, url, MESSAGE_OK))[0] == 503
            assert (await post(session, url, MESSAGE_OK))[0] == 201
            async with session.put(f"{base}/latency", json={"seconds": 0.01}) as answer:
                assert (answer.status, await answer.json()) == (200, {"seconds": 0.01})
            assert sandbox.latency == 0.01
            async with session.put(f"{base}/latency", json={"seconds": -1}) as answer:
                assert answer.status == 400
            async with session.post(f"{base}/faults", json={"kind": "drop"}) as answer:
                assert answer.status == 201
            async with session.delete(f"{base}/faults", headers=JSON) as answer:
                assert answer.status == 204
            assert sandbox.faults == []
            async with session.get(f"{base}/state") as answer:
                state = await answer.json()
            assert [m["sid"] for m in state["messages"]] == [m["sid"] for m in sandbox.messages]
            assert state["messages"][0]["request"]["Body"] == "hi"
            assert (state["requests"], state["faults_applied"]["status"]) == (2, 1)
            assert state["connections_accepted"] == sandbox.connections_accepted >= 1
            async with session.post(f"{base}/reset", headers=JSON) as answer:
                assert answer.status == 204
        assert (sandbox.messages, sandbox.requests, sandbox.faults_applied["status"]) == ([], 0, 0)
        assert sandbox.latency == 0.01  # reset keeps the configured latency

    run(scenario)


def test_latency_still_answers_every_request() -> None:
    async def scenario(sandbox: TwilioSandbox) -> None:
        await asyncio.gather(
            *(
                in_thread(
                    twilio(sandbox).messages.create, to=CUSTOMER, from_=VALID_FROM, body=f"{n}"
                )
                for n in range(5)
            )
        )
        assert sorted(message["body"] for message in sandbox.messages) == ["0", "1", "2", "3", "4"]

    run(scenario, latency=0.05)


# --- connections ---------------------------------------------------------------------------


def test_connections_are_counted_per_tcp_connection() -> None:
    async def listed(session: aiohttp.ClientSession, url: str) -> list[Any]:
        # Reading the whole answer is what lets the client reuse the connection.
        async with session.get(url, headers=auth_headers()) as answer:
            return (await answer.json())["messages"]

    async def scenario(sandbox: TwilioSandbox) -> None:
        url = f"{sandbox.base_url}{ACCOUNT_PATH}/Messages.json"
        async with aiohttp.ClientSession() as session:
            for _ in range(5):
                assert await listed(session, url) == []
        assert (sandbox.connections_accepted, sandbox.requests) == (1, 5)
        for _ in range(5):
            async with aiohttp.ClientSession() as session:
                assert await listed(session, url) == []
        assert (sandbox.connections_accepted, sandbox.requests) == (6, 10)
        sandbox.reset()
        client = twilio(sandbox)  # twilio-python keeps one requests.Session
        for _ in range(3):
            await in_thread(client.messages.create, to=CUSTOMER, from_=VALID_FROM, body="x")
        assert sandbox.connections_accepted == 1

    run(scenario)


# --- the TwiML fetch ------------------------------------------------------------------------


class Webhook:
    """A stand-in for the app's TwiML endpoint that checks Twilio's signature."""

    def __init__(self, answer: str = TWIML, status: int = 200) -> None:
        self.answer = answer
        self.status = status
        self.seen: list[dict[str, Any]] = []
        self.hang = False
        self.reached = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        params = dict(await request.post()) if request.method == "POST" else {}
        url = str(request.url)
        self.seen.append(
            {
                "method": request.method,
                "params": params or dict(request.query),
                "valid": RequestValidator(AUTH_TOKEN).validate(
                    url, params, request.headers.get("X-Twilio-Signature", "")
                ),
                "forged_valid": RequestValidator("not-the-token").validate(
                    url, params, request.headers.get("X-Twilio-Signature", "")
                ),
                "user_agent": request.headers.get("User-Agent"),
            }
        )
        self.reached.set()
        if self.hang:
            await asyncio.Event().wait()
        return web.Response(text=self.answer, status=self.status, content_type="text/xml")

    async def start(self) -> tuple[str, web.AppRunner]:
        app = web.Application()
        app.router.add_route("*", "/voice", self.handle)
        runner, base = await serve(app, shutdown_timeout=0.5)
        return f"{base}/voice", runner


async def _call_webhook(
    sandbox: TwilioSandbox, hook: Webhook, method: str = "POST", url: str | None = None
) -> dict[str, Any]:
    hook_url, runner = await hook.start()
    try:
        call = await in_thread(
            twilio(sandbox).calls.create,
            to=CUSTOMER,
            from_=VALID_FROM,
            url=url or f"{hook_url}?lang=en",
            method=method,
        )
        return await sandbox.wait_for_twiml(call.sid, timeout=30)
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_call_fetches_signed_twiml_and_records_what_is_heard(method: str) -> None:
    hook = Webhook()

    async def scenario(sandbox: TwilioSandbox) -> None:
        call = await _call_webhook(sandbox, hook, method)
        assert call["heard"] == HEARD
        assert (call["status"], call["twiml_status"], call["error"]) == ("completed", 200, None)
        assert call["twiml"] == TWIML
        [seen] = hook.seen
        assert seen["method"] == method
        assert (seen["valid"], seen["forged_valid"]) == (True, False)
        assert seen["user_agent"] == "TwilioProxy/1.1"
        params = seen["params"]
        assert params["CallSid"] == call["sid"]
        assert (params["AccountSid"], params["From"], params["To"]) == (
            ACCOUNT_SID,
            VALID_FROM,
            CUSTOMER,
        )
        assert (params["CallStatus"], params["Direction"], params["ApiVersion"]) == (
            "in-progress",
            "outbound-api",
            "2010-04-01",
        )

    run(scenario)


#: What the callee hears when Twilio gets no TwiML: its own error message (see
#: tests/test_fidelity_calls.py for the FallbackUrl and the other checks).
APPLICATION_ERROR = [{"verb": "Say", "text": "We are sorry, an application error has "
                      "occurred. Goodbye.", "voice": None, "language": None}]


@pytest.mark.parametrize(
    ("answer", "status", "error_code"),
    [
        (TWIML, 500, "11200"),
        ("this is not xml", 200, "12100"),
        ("<Html><Say>hi</Say></Html>", 200, "12102"),
    ],
    ids=["http-500", "not-xml", "not-response"],
)
def test_a_call_whose_twiml_cannot_be_played_hears_twilios_error_message(
    answer: str, status: int, error_code: str
) -> None:
    async def scenario(sandbox: TwilioSandbox) -> None:
        call = await _call_webhook(sandbox, Webhook(answer, status))
        assert call["status"] == "completed" and int(call["duration"]) >= 1
        assert call["error"].startswith(error_code)
        assert (call["twiml_status"], call["heard"]) == (status, APPLICATION_ERROR)

    run(scenario)


def test_answers_are_read_in_bounds_never_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """TwiML past 64 kB fails (11750) once 64 kB are read, kept nowhere; a status
    callback's answer is read chunk by chunk: no answer is ever read whole."""
    read_whole: list[str] = []
    read = aiohttp.ClientResponse.read

    async def reading_whole(self: aiohttp.ClientResponse) -> bytes:
        read_whole.append(str(self.url))
        return await read(self)

    monkeypatch.setattr(aiohttp.ClientResponse, "read", reading_whole)
    hook = Webhook(f"<Response><Say>{'x' * 1024 * 1024}</Say></Response>")

    async def scenario(sandbox: TwilioSandbox) -> None:
        hook_url, runner = await hook.start()
        try:
            created = await in_thread(twilio(sandbox).calls.create, to=CUSTOMER,
                                      from_=VALID_FROM, url=hook_url, status_callback=hook_url)
            call = await sandbox.wait_for_twiml(created.sid, timeout=30)
            await until(lambda: any(entry["sid"] == call["sid"] and entry["answered"] == 200
                                    for entry in sandbox.callbacks_sent))
        finally:
            await runner.cleanup()
        assert call["error"].startswith("11750")
        assert (call["twiml"], call["heard"]) == (None, APPLICATION_ERROR)
        assert read_whole == []

    run(scenario)


def test_a_call_whose_url_refuses_connections_hears_twilios_error_message() -> None:
    async def scenario(sandbox: TwilioSandbox) -> None:
        hook_url, runner = await Webhook().start()
        await runner.cleanup()  # nothing listens there any more
        call = await _call_webhook(sandbox, Webhook(), url=hook_url)
        assert (call["status"], call["heard"]) == ("completed", APPLICATION_ERROR)
        assert call["error"].startswith("11205")

    run(scenario)


def test_inline_twiml_is_heard_without_a_fetch() -> None:
    async def scenario(sandbox: TwilioSandbox) -> None:
        call = await in_thread(
            twilio(sandbox).calls.create, to=CUSTOMER, from_=VALID_FROM, twiml=TWIML
        )
        stored = await sandbox.wait_for_twiml(call.sid, timeout=30)
        assert (stored["heard"], stored["status"], stored["twiml_status"]) == (
            HEARD,
            "completed",
            None,
        )

    run(scenario)


def test_stop_cancels_a_twiml_fetch_under_way() -> None:
    hook = Webhook()
    hook.hang = True

    async def scenario() -> dict[str, Any]:
        hook_url, runner = await hook.start()
        sandbox = TwilioSandbox(accounts={ACCOUNT_SID: AUTH_TOKEN})
        await sandbox.start()
        try:
            call = await in_thread(
                twilio(sandbox).calls.create, to=CUSTOMER, from_=VALID_FROM, url=hook_url
            )
            await asyncio.wait_for(hook.reached.wait(), 30)
            async with asyncio.timeout(30):
                await sandbox.stop()
            return sandbox.calls[0] | {"created_sid": call.sid}
        finally:
            await sandbox.stop()
            await runner.cleanup()

    call = asyncio.run(scenario())
    assert call["sid"] == call["created_sid"]
    assert call["status"] == "in-progress"  # never answered, never completed


def test_wait_for_twiml_of_unknown_call_raises() -> None:
    async def scenario(sandbox: TwilioSandbox) -> None:
        with pytest.raises(KeyError):
            await sandbox.wait_for_twiml("CA" + "0" * 32)

    run(scenario)


def test_twiml_reading_follows_document_order_into_gather() -> None:
    heard = parse_twiml(
        "<Response><Gather><Say language='en-GB'>Press\n  one</Say><Play>a.mp3</Play></Gather>"
        "<Pause length='1'/><Say>bye</Say><Hangup/></Response>"
    )
    assert heard == [
        {"verb": "Gather"},
        {"verb": "Say", "text": "Press one", "voice": None, "language": "en-GB"},
        {"verb": "Play", "url": "a.mp3"},
        {"verb": "Pause"},
        {"verb": "Say", "text": "bye", "voice": None, "language": None},
        {"verb": "Hangup"},
    ]
    with pytest.raises(TwimlError):
        parse_twiml("<Response><Say>unclosed</Response>")


@settings(deadline=None)  # no timing in tests
@given(st.text(st.characters(exclude_categories=("Cs", "Cc", "Cn"))))
def test_say_text_survives_xml_escaping(text: str) -> None:
    document = f"<Response><Say>{xml.sax.saxutils.escape(text)}</Say></Response>"
    assert parse_twiml(document)[0]["text"] == " ".join(text.split())


# --- the command line -------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_cli_prints_ready_line_serves_and_stops_on_signal(signum: signal.Signals) -> None:
    async def scenario() -> None:
        process = await children.start_async(
            sys.executable,
            "-m",
            "twilio_sandbox",
            *("--host", "127.0.0.1", "--port", "0"),
            *("--account-sid", ACCOUNT_SID, "--auth-token", AUTH_TOKEN),
            *("--api-key", KEY_SID, "--api-secret", KEY_SECRET),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            assert process.stdout is not None
            line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
            ready = re.fullmatch(r"twilio-sandbox listening on (http://127\.0\.0\.1:\d+)\n", line)
            assert ready, line
            url = f"{ready.group(1)}{ACCOUNT_PATH}/Messages.json"
            async with aiohttp.ClientSession() as session:
                status, body = await post(session, url, MESSAGE_OK)
            assert (status, body["to"]) == (201, CUSTOMER)
            process.send_signal(signum)
            rest, errors = await asyncio.wait_for(process.communicate(), 60)
            assert process.returncode == 0, errors.decode()
            assert rest == b""  # the ready line is the only output on stdout
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "argv",
    [
        ["--auth-token", "t"],
        ["--account-sid", ACCOUNT_SID, "--auth-token", "t", "--api-key", KEY_SID],
        ["--account-sid", ACCOUNT_SID, "--auth-token", "t", "--latency", "-1"],
    ],
    ids=["no-account", "key-without-secret", "negative-latency"],
)
def test_cli_refuses_incomplete_arguments(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_args(argv)
    assert exited.value.code == 2


# --- who may reach it --------------------------------------------------------------


@pytest.mark.parametrize("path", ["/_sandbox/state", "/console/", ACCOUNT_PATH + "/Messages.json"])
def test_bound_to_loopback_it_answers_loopback_names_only(path: str) -> None:
    """A page on another name that resolves to 127.0.0.1 (DNS rebinding) reads nothing."""

    async def scenario(sandbox: TwilioSandbox) -> list[tuple[str, int, str]]:
        port = sandbox.base_url.rsplit(":", 1)[1]
        seen = []
        async with aiohttp.ClientSession() as session:
            for host in (f"attacker.example:{port}", f"localhost:{port}", f"127.0.0.1:{port}"):
                async with session.get(sandbox.base_url + path,
                                       headers={"Host": host, **auth_headers()}) as answer:
                    seen.append((host.split(":")[0], answer.status, await answer.text()))
        return seen

    (_, refused_status, refused_body), *allowed = run(scenario)
    assert refused_status == 421 and "DNS rebinding" in refused_body
    assert "MMS" not in refused_body and "messages" not in refused_body
    assert [status for _, status, _ in allowed] == [200, 200]


def test_a_name_it_is_told_to_allow_is_answered_too() -> None:
    async def main() -> list[int]:
        sandbox = TwilioSandbox(accounts={ACCOUNT_SID: AUTH_TOKEN})
        url = await sandbox.start("127.0.0.1", 0, ["console.example"])
        port = url.rsplit(":", 1)[1]
        try:
            async with aiohttp.ClientSession() as session:
                return [(await session.get(f"{url}/_sandbox/state",
                                           headers={"Host": f"{name}:{port}"})).status
                        for name in ("console.example", "other.example")]
        finally:
            await sandbox.stop()

    assert asyncio.run(main()) == [200, 421]


def test_bound_to_every_address_it_answers_any_name() -> None:
    async def scenario(sandbox: TwilioSandbox) -> int:
        port = sandbox.base_url.rsplit(":", 1)[1]
        async with aiohttp.ClientSession() as session, session.get(
                f"http://127.0.0.1:{port}/_sandbox/state",
                headers={"Host": f"sandbox.internal:{port}"}) as answer:
            return answer.status

    async def main() -> int:
        sandbox = TwilioSandbox(accounts={ACCOUNT_SID: AUTH_TOKEN})
        await sandbox.start("0.0.0.0", 0)  # noqa: S104 - the case under test
        try:
            return await scenario(sandbox)
        finally:
            await sandbox.stop()

    assert asyncio.run(main()) == 200


# --- other sites' pages ----------------------------------------------------------------


PLACEHOLDERS = {"sid": "SM" + "0" * 32, "id": "1", "function": "send_sms"}


def changing_routes() -> list[tuple[str, str]]:
    """Every route under /_sandbox/ that may change something, as the server has them."""
    app = build_app(TwilioSandbox(accounts={ACCOUNT_SID: AUTH_TOKEN}))
    found = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if path.startswith("/_sandbox/") and route.method not in ("GET", "HEAD"):
            found.add((route.method, re.sub(r"{(\w+)}", lambda m: PLACEHOLDERS.get(m[1], "x"),
                                            path)))
    return sorted(found)


def test_the_routes_that_change_the_sandbox_are_all_guarded() -> None:
    paths = {path for _, path in changing_routes()}
    assert {"/_sandbox/reset", "/_sandbox/faults", "/_sandbox/callback_faults",
            "/_sandbox/latency", "/_sandbox/webhooks/1/resend",
            "/_sandbox/actions/reset_limits", "/_sandbox/inbound/sms"} <= paths


@pytest.mark.parametrize(("method", "path"), changing_routes())
def test_another_sites_page_cannot_change_the_sandbox(method: str, path: str) -> None:
    """A page on localhost:3000 can send JSON-looking text, or JSON with its Origin: refused."""

    async def scenario(sandbox: TwilioSandbox) -> None:
        own = sandbox.base_url
        async with aiohttp.ClientSession() as session:
            assert (await post(session, f"{own}{ACCOUNT_PATH}/Messages.json", MESSAGE_OK))[0] == 201
            attempts = [
                ({"Origin": "http://localhost:3000", **JSON}, "{}", 403),
                ({"Origin": "null", **JSON}, "{}", 403),
                ({"Content-Type": "text/plain"}, "{}", 415),  # what a no-cors fetch sends
                ({"Content-Type": "application/x-www-form-urlencoded"}, "a=1", 415),
                ({}, None, 415),  # body-less, no type
            ]
            for headers, body, expected in attempts:
                async with session.request(method, own + path, data=body,
                                           headers=headers) as answer:
                    assert answer.status == expected, (headers, await answer.text())
                    assert answer.content_type == "application/problem+json"
                    assert (await answer.json())["status"] == expected
            assert len(sandbox.messages) == 1 and sandbox.faults == []
            assert sandbox.callback_faults == [] and sandbox.latency == 0
            async with session.request(method, own + path, data="{}",
                                       headers={"Origin": own, **JSON}) as answer:
                assert answer.status not in (403, 415), await answer.text()

    run(scenario)


def test_twilios_rest_api_takes_forms_whatever_the_origin() -> None:
    async def scenario(sandbox: TwilioSandbox) -> int:
        async with aiohttp.ClientSession() as session, session.post(
                f"{sandbox.base_url}{ACCOUNT_PATH}/Messages.json", data=MESSAGE_OK,
                headers={**auth_headers(), "Origin": "http://localhost:3000"}) as answer:
            return answer.status

    assert run(scenario) == 201


# --- slow clients --------------------------------------------------------------------------


def test_a_connection_that_never_finishes_its_request_head_is_closed() -> None:
    timeout = 0.5

    async def main() -> float:
        sandbox = TwilioSandbox(accounts={ACCOUNT_SID: AUTH_TOKEN})
        runner, _ = await serve(build_app(sandbox, header_timeout=timeout))
        try:
            reader, writer = await asyncio.open_connection(*runner.addresses[0][:2])
            writer.write(b"GET /_sandbox/state HTTP/1.1\r\nHost: localhost\r\nX-Slow: a")
            started = time.monotonic()

            async def trickle() -> None:  # one more header byte now and then, never the end
                while True:
                    await asyncio.sleep(timeout / 5)
                    writer.write(b"a")

            dripping = asyncio.create_task(trickle())
            async with asyncio.timeout(10):
                assert await reader.read() == b""  # closed, nothing answered
            dripping.cancel()
            writer.close()
            return time.monotonic() - started
        finally:
            await runner.cleanup()

    assert asyncio.run(main()) >= timeout * 0.8
    assert HEADER_TIMEOUT_SECONDS == 30.0  # the local Functions host's, as Kestrel's
