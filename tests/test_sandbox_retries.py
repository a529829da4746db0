"""How the sandbox retries webhooks and callbacks: as Twilio does, by default and as a URL's
connection overrides ask (https://www.twilio.com/docs/usage/webhooks/webhooks-connection-overrides).

Twilio's default: one retry, only when the connection fails (error 11205,
https://www.twilio.com/docs/api/errors/11205); an answer, a 503 included, is final.
A ``#rc=..&rp=..&ct=..&rt=..&tt=..`` fragment changes that per URL; it is neither sent
nor signed. Each test runs its own sandbox and a stand-in app on loopback ports.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from stub_server import serve
from twilio.request_validator import RequestValidator

from twilio_sandbox import VALID_FROM, TwilioSandbox
from twilio_sandbox.overrides import DEFAULT, parse, split
from twilio_sandbox.simulate import inbound_sms

ACCOUNT_SID = "AC" + "5" * 32
AUTH_TOKEN = "retries-auth-token"
TO = "+14155550142"
TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response><Say>retried</Say></Response>'
HANG = -1  # an answer that never comes
STALL = -2  # an answer whose status line comes, then nothing


class App:
    """A stand-in for the app: answers each request with the next status it is given (the
    last one from then on), and keeps what arrived and whether Twilio's signature holds."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.seen: list[dict[str, Any]] = []
        self.released = asyncio.Event()
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        params = dict(await request.post()) if request.method == "POST" else {}
        signature = request.headers.get("X-Twilio-Signature", "")
        self.seen.append({"path_qs": request.path_qs, "params": params, "signature": signature,
                          "token": request.headers.get("I-Twilio-Idempotency-Token"),
                          "valid": RequestValidator(AUTH_TOKEN).validate(
                              str(request.url), params, signature)})
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        if status == STALL:
            response = web.StreamResponse(status=200, headers={"Content-Type": "text/xml"})
            await response.prepare(request)
            await response.write(b"<Response>")
            await self.released.wait()
            return response
        if status == HANG:
            await self.released.wait()
        return web.Response(status=status, text=TWIML, content_type="text/xml")


@asynccontextmanager
async def running(app: App) -> AsyncIterator[App]:
    server = web.Application()
    server.router.add_route("*", "/hook", app.handle)
    runner, base = await serve(server, shutdown_timeout=0.1)
    app.url = f"{base}/hook?q=1"
    try:
        yield app
    finally:
        app.released.set()
        await runner.cleanup()


def sandboxed(scenario: Callable[[TwilioSandbox], Awaitable[None]]) -> None:
    async def main() -> None:
        async with TwilioSandbox(accounts={ACCOUNT_SID: AUTH_TOKEN}) as sandbox:
            await scenario(sandbox)
    asyncio.run(main())


async def until(condition: Callable[[], bool]) -> None:
    """Wait for state the sandbox changes (the timeout is a safety net only)."""
    async with asyncio.timeout(30):
        while not condition():  # noqa: ASYNC110 - that state has no event to wait on
            await asyncio.sleep(0.005)


async def create(sandbox: TwilioSandbox, resource: str, **form: str) -> str:
    """POST to Twilio's REST API as the app does; the new resource's SID."""
    url = f"{sandbox.base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/{resource}.json"
    auth = {"Authorization": aiohttp.encode_basic_auth(ACCOUNT_SID, AUTH_TOKEN)}
    async with aiohttp.ClientSession() as session, session.post(
            url, data={"To": TO, "From": VALID_FROM, **form}, headers=auth) as answer:
        assert answer.status == 201, await answer.text()
        return (await answer.json())["sid"]


def answered_or_failed(attempt: dict) -> bool:
    return attempt["answered"] is not None or attempt["error"] is not None


async def reports(sandbox: TwilioSandbox, callback: str, finished: int = 2,
                  ended: Callable[[dict], bool] = answered_or_failed) -> list[dict]:
    """Send a message reporting to ``callback``; its report attempts once the message is
    delivered and every attempt, at least ``finished`` of them, has ``ended``."""
    sid = await create(sandbox, "Messages", Body="hi", StatusCallback=callback)

    def attempts() -> list[dict]:
        return [entry for entry in sandbox.callbacks_sent if entry["sid"] == sid]

    def done() -> bool:
        message = next(m for m in sandbox.messages if m["sid"] == sid)
        outcomes = [ended(attempt) for attempt in attempts()]
        return message["status"] == "delivered" and all(outcomes) and len(outcomes) >= finished
    await until(done)
    await sandbox.wait_idle()
    return attempts()


def outcomes(attempts: list[dict]) -> list[tuple[str, int, int | None]]:
    return [(a["status"], a["attempt"], a["answered"]) for a in attempts]


def closed_port() -> str:
    """A loopback URL nothing listens on: connections to it are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


# --- reading the fragment ---------------------------------------------------------------


def test_a_url_without_a_fragment_gets_twilios_defaults() -> None:
    assert split("https://app.example/cb?q=1") == ("https://app.example/cb?q=1", DEFAULT)
    assert (DEFAULT.ct, DEFAULT.rt, DEFAULT.tt, DEFAULT.rc, DEFAULT.rp) == (
        5000, 15000, 15000, 1, frozenset({"ct"}))


def test_every_override_is_read_within_twilios_ranges() -> None:
    target, read = split("https://app.example/cb?q=1#ct=100&rt=15000&tt=2000&rc=5&rp=5xx,rt"
                         "&e=dublin&sni=n")
    assert target == "https://app.example/cb?q=1"
    assert (read.ct, read.rt, read.tt, read.rc, read.rp) == (
        100, 15000, 2000, 5, frozenset({"5xx", "rt"}))
    assert parse("rp=all").rp == frozenset({"4xx", "5xx", "ct", "rt"})


@pytest.mark.parametrize("fragment", ["ct=99", "rt=15001", "tt=0", "rc=6", "rc=-1", "ct=1e3",
                                      "ct=", "zz=1", "section"])
def test_a_value_out_of_range_or_an_unknown_key_keeps_the_default(fragment: str) -> None:
    assert parse(fragment) == DEFAULT


@pytest.mark.parametrize("policy", ["5XX", "timeout", "", "5xx,,ct", "ct;rt"])
def test_an_invalid_retry_policy_is_twilios_11243(policy: str) -> None:
    assert parse(f"rc=2&rp={policy}").invalid == policy


# --- status callbacks ---------------------------------------------------------------------


def test_by_default_a_503_is_not_retried() -> None:
    async def scenario(sandbox: TwilioSandbox) -> None:
        async with running(App(503)) as app:
            attempts = await reports(sandbox, app.url)
        assert outcomes(attempts) == [("sent", 1, 503), ("delivered", 1, 503)]

    sandboxed(scenario)


def test_by_default_a_refused_connection_is_retried_once() -> None:
    async def scenario(sandbox: TwilioSandbox) -> None:
        attempts = await reports(sandbox, closed_port(), finished=4)
        assert outcomes(attempts) == [("sent", 1, None), ("sent", 2, None),
                                      ("delivered", 1, None), ("delivered", 2, None)]
        assert all(a["error"].startswith("11205 HTTP connection failure") for a in attempts)
        assert attempts[0]["token"] == attempts[1]["token"] != attempts[2]["token"]

    sandboxed(scenario)


def test_rp_5xx_retries_a_503_with_the_same_token_until_answered() -> None:
    async def scenario(sandbox: TwilioSandbox) -> None:
        async with running(App(503, 204)) as app:
            attempts = await reports(sandbox, f"{app.url}#rp=5xx")
        assert outcomes(attempts) == [("sent", 1, 503), ("sent", 2, 204), ("delivered", 1, 204)]
        assert app.seen[0]["token"] == app.seen[1]["token"]

    sandboxed(scenario)


def test_rp_4xx_retries_a_404_which_the_default_does_not() -> None:
    async def scenario(sandbox: TwilioSandbox) -> None:
        async with running(App(404, 204)) as app:
            attempts = await reports(sandbox, f"{app.url}#rp=4xx,ct")
        assert outcomes(attempts) == [("sent", 1, 404), ("sent", 2, 204), ("delivered", 1, 204)]

    sandboxed(scenario)


@pytest.mark.parametrize(("retries", "expected"), [(0, 1), (3, 4), (5, 6)])
def test_rc_is_the_number_of_retries(retries: int, expected: int) -> None:
    async def scenario(sandbox: TwilioSandbox) -> None:
        async with running(App(503)) as app:
            attempts = await reports(sandbox, f"{app.url}#rp=5xx&rc={retries}",
                                     finished=2 * expected)
        assert [a["attempt"] for a in attempts if a["status"] == "sent"] == list(
            range(1, expected + 1))

    sandboxed(scenario)


def test_the_fragment_is_neither_sent_nor_signed() -> None:
    async def scenario(sandbox: TwilioSandbox) -> None:
        fragment = "#rc=2&rp=5xx,ct&ct=2000&rt=6000"
        async with running(App(204)) as app:
            attempts = await reports(sandbox, app.url + fragment)
        assert {a["url"] for a in attempts} == {app.url}
        assert [seen["path_qs"] for seen in app.seen] == ["/hook?q=1", "/hook?q=1"]
        validator = RequestValidator(AUTH_TOKEN)
        for seen in app.seen:  # valid over the URL requested, not over the one given
            assert seen["valid"]
            assert not validator.validate(app.url + fragment, seen["params"], seen["signature"])

    sandboxed(scenario)


def test_ct_bounds_each_connection_attempt() -> None:
    """A listener whose backlog is full leaves a connect hanging: ct=200 ends each attempt.
    (With Twilio's 5 s, tt=10000 would end the second attempt: two, not three, and 11203.)"""
    async def scenario(sandbox: TwilioSandbox) -> None:
        with socket.socket() as full:
            full.bind(("127.0.0.1", 0))
            full.listen(0)
            port = full.getsockname()[1]
            fillers = [socket.socket() for _ in range(3)]
            for filler in fillers:
                filler.setblocking(False)
                filler.connect_ex(("127.0.0.1", port))
            try:
                url = f"http://127.0.0.1:{port}/hook#ct=200&rc=2&tt=10000"
                attempts = await reports(sandbox, url, finished=6)
            finally:
                for filler in fillers:
                    filler.close()
        sent = [a for a in attempts if a["status"] == "sent"]
        assert [a["attempt"] for a in sent] == [1, 2, 3]
        assert all("ConnectionTimeoutError" in a["error"] for a in sent)

    sandboxed(scenario)


@pytest.mark.parametrize(("policy", "tries"), [("rt", 2), ("ct", 1)])
def test_rt_ends_an_attempt_that_gets_no_answer_and_rp_rt_retries_it(
        policy: str, tries: int) -> None:
    async def scenario(sandbox: TwilioSandbox) -> None:
        async with running(App(HANG)) as app:
            attempts = await reports(sandbox, f"{app.url}#rt=200&rp={policy}&tt=10000",
                                     finished=2 * tries)
        sent = [a for a in attempts if a["status"] == "sent"]
        assert len(sent) == tries
        assert all("SocketTimeoutError" in a["error"] for a in sent)

    sandboxed(scenario)


def test_an_answer_cut_off_part_way_is_not_retried_even_with_rp_rt() -> None:
    async def scenario(sandbox: TwilioSandbox) -> None:
        async with running(App(STALL)) as app:
            attempts = await reports(sandbox, f"{app.url}#rt=200&rp=rt&rc=3",
                                     ended=lambda attempt: attempt["error"] is not None)
        assert outcomes(attempts) == [("sent", 1, 200), ("delivered", 1, 200)]
        assert all("SocketTimeoutError" in a["error"] for a in attempts)

    sandboxed(scenario)


def test_tt_bounds_every_attempt_together() -> None:
    """No answer: rt (10 s) would end the attempt and rp=rt retry it five times; tt ends it
    all at 0.5 s with Twilio's 11203."""
    async def scenario(sandbox: TwilioSandbox) -> None:
        async with running(App(HANG)) as app:
            attempts = await reports(sandbox, f"{app.url}#rt=10000&tt=500&rp=rt&rc=5")
        assert outcomes(attempts) == [("sent", 1, None), ("delivered", 1, None)]
        assert all(a["error"] == "11203 HTTP communication total time out triggered"
                   for a in attempts)

    sandboxed(scenario)


def test_an_invalid_retry_policy_sends_nothing_and_says_11243() -> None:
    async def scenario(sandbox: TwilioSandbox) -> None:
        async with running(App(204)) as app:
            attempts = await reports(sandbox, f"{app.url}#rp=5xx,sometimes")
        assert app.seen == []
        assert outcomes(attempts) == [("sent", 0, None), ("delivered", 0, None)]
        assert attempts[0]["error"] == ("11243 HTTP retry policy is invalid: "
                                        "rp=5xx,sometimes")

    sandboxed(scenario)


# --- the call's TwiML, and an SMS arriving ---------------------------------------------------


async def called(sandbox: TwilioSandbox, url: str) -> dict:
    sid = await create(sandbox, "Calls", Url=url)
    return await sandbox.wait_for_twiml(sid, timeout=30)


def test_a_calls_twiml_fetch_is_retried_as_its_url_says() -> None:
    async def scenario(sandbox: TwilioSandbox) -> None:
        async with running(App(503, 200)) as app:
            call = await called(sandbox, f"{app.url}#rp=5xx")
            assert (call["status"], call["twiml_status"]) == ("completed", 200)
            assert [seen["valid"] for seen in app.seen] == [True, True]
        async with running(App(503, 200)) as app:
            call = await called(sandbox, app.url)  # Twilio's default: an answer is final
            assert (call["twiml_status"], len(app.seen)) == (503, 1)
        nowhere = closed_port()
        call = await called(sandbox, nowhere)  # a failed connection: retried once
        assert call["error"].startswith("11205")
        assert len([w for w in sandbox.webhooks.records if w["url"] == nowhere]) == 2

    sandboxed(scenario)


def test_a_calls_url_with_an_invalid_retry_policy_is_not_fetched() -> None:
    async def scenario(sandbox: TwilioSandbox) -> None:
        async with running(App(200)) as app:
            call = await called(sandbox, f"{app.url}#rp=never")
        assert app.seen == []
        assert call["error"] == "11243 HTTP retry policy is invalid: rp=never"

    sandboxed(scenario)


def test_an_arriving_sms_is_retried_as_its_url_says() -> None:
    async def scenario(sandbox: TwilioSandbox) -> None:
        async with running(App(503, 200)) as app:
            outcome = await inbound_sms(sandbox, {"from": TO, "body": "hi",
                                                  "url": f"{app.url}#rp=5xx&rc=2"})
            assert outcome["webhook"]["answer"]["status"] == 200
            assert [seen["path_qs"] for seen in app.seen] == ["/hook?q=1"] * 2
            assert all(seen["valid"] for seen in app.seen)
        async with running(App(503, 200)) as app:
            outcome = await inbound_sms(sandbox, {"from": TO, "body": "hi", "url": app.url})
            assert outcome["webhook"]["answer"]["status"] == 503
            assert len(app.seen) == 1
        async with running(App(200)) as app:
            outcome = await inbound_sms(sandbox, {"from": TO, "body": "hi",
                                                  "url": f"{app.url}#rp=bad"})
            assert app.seen == []
            assert outcome["webhook"]["error"] == "11243 HTTP retry policy is invalid: rp=bad"

    sandboxed(scenario)
