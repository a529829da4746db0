"""The sandbox's messages as Twilio's, row by row (issue 19's messaging rows).

Each test names the Twilio page or OpenAPI path it holds the sandbox to. The
sandbox runs in-process on loopback; "the app" is the console tests' stand-in
(it checks Twilio's signature and records what it is sent), or twilio-python
itself for the REST API.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from test_sandbox_console import ACCOUNT_SID as CONSOLE_ACCOUNT
from test_sandbox_console import App, act
from test_sandbox_console import run as run_with_app
from test_twilio_sandbox import (
    CUSTOMER,
    in_thread,
    refused,
    run,
    twilio,
    until,
)

from twilio_sandbox import VALID_FROM, TwilioSandbox
from twilio_sandbox.__main__ import parse_args
from twilio_sandbox.keywords import REPLIES

SERVICE = "MG" + "7" * 32
POOL_NUMBER = "+14155550999"  # a number of the account, in SERVICE's sender pool
SF_TEXTER = "+14155550123"  # San Francisco, CA: the area code's geocoding
UK_TEXTER = "+447400123456"  # a UK mobile: a country, no city or state
CALLBACK = "http://localhost:7071/api/status_callback"
#: What Twilio's incoming-message webhook carries for an SMS (the documented
#: parameters, https://www.twilio.com/docs/messaging/guides/webhook-request, and the
#: deprecated SmsSid/SmsMessageSid/SmsStatus/ApiVersion that captured requests show).
INBOUND_FIELDS = {
    "MessageSid", "SmsSid", "SmsMessageSid", "AccountSid", "From", "To", "Body", "NumMedia",
    "NumSegments", "SmsStatus", "ApiVersion",
    *(f"{side}{part}" for side in ("From", "To") for part in ("City", "State", "Zip", "Country")),
}


async def text(session: aiohttp.ClientSession, body: str, sender: str = SF_TEXTER,
               to: str | None = None) -> dict[str, Any]:
    """A texter's SMS reaches the app through the sandbox; the console API's answer."""
    status, _, outcome = await act(session, "/_sandbox/inbound/sms",
                                   {"from": sender, "body": body, **({"to": to} if to else {})})
    assert status == 200, outcome
    return outcome


async def add_service(session: aiohttp.ClientSession, **fields: Any) -> tuple[int, Any]:
    status, _, answer = await act(session, "/_sandbox/messaging_services",
                                  {"sid": SERVICE, "numbers": [VALID_FROM], **fields})
    return status, answer


async def create(session: aiohttp.ClientSession, **form: str) -> tuple[int, Any]:
    auth = {"Authorization": aiohttp.encode_basic_auth(CONSOLE_ACCOUNT, "console-auth-token")}
    async with session.post(f"/2010-04-01/Accounts/{CONSOLE_ACCOUNT}/Messages.json",
                            data={"To": SF_TEXTER, "Body": "hi", **form}, headers=auth) as answer:
        return answer.status, await answer.json()


# --- row 6: the incoming-message webhook ------------------------------------------------


def test_an_incoming_sms_carries_twilios_fields_and_where_its_numbers_are() -> None:
    """https://www.twilio.com/docs/messaging/guides/webhook-request: the message, and the
    From/To city, state, zip and country Twilio looks up, empty where unknown."""

    async def scenario(sandbox: TwilioSandbox, app: App, session: aiohttp.ClientSession) -> None:
        outcome = await text(session, "Is it ready?")
        await text(session, "Hello from London", sender=UK_TEXTER)
        first, second = (seen["params"] for seen in app.seen)
        assert all(seen["valid"] for seen in app.seen)  # signed over every parameter
        assert set(first) == INBOUND_FIELDS == set(second)  # no service, no OptOutType
        sid = outcome["message"]["sid"]
        assert first["MessageSid"] == first["SmsSid"] == first["SmsMessageSid"] == sid
        assert (first["NumSegments"], first["SmsStatus"], first["ApiVersion"]) == (
            "1", "received", "2010-04-01")
        assert {k: first[k] for k in ("FromCity", "FromState", "FromZip", "FromCountry")} == {
            "FromCity": "SAN FRANCISCO", "FromState": "CA", "FromZip": "", "FromCountry": "US"}
        assert {k: first[k] for k in ("ToCity", "ToState", "ToZip", "ToCountry")} == {
            "ToCity": "", "ToState": "", "ToZip": "", "ToCountry": "US"}
        assert {k: second[k] for k in ("FromCity", "FromState", "FromZip", "FromCountry")} == {
            "FromCity": "", "FromState": "", "FromZip": "", "FromCountry": "GB"}

    run_with_app(scenario)


def test_a_number_in_a_messaging_service_receives_and_opts_out_as_the_service() -> None:
    """A number of a Messaging Service: the webhook names the service
    (https://www.twilio.com/docs/messaging/guides/webhook-request), and a STOP holds for
    the whole service (https://help.twilio.com/articles/223133627): 21610 through the
    service and from any number of its pool (https://www.twilio.com/docs/api/errors/21610)."""

    async def scenario(sandbox: TwilioSandbox, app: App, session: aiohttp.ClientSession) -> None:
        assert await add_service(session, numbers=[VALID_FROM, POOL_NUMBER]) == (200, {
            "sid": SERVICE, "numbers": [VALID_FROM, POOL_NUMBER], "advanced_opt_out": False,
            "keywords": {}})
        outcome = await text(session, "STOP")
        [seen] = app.seen
        assert seen["valid"] and seen["params"]["MessagingServiceSid"] == SERVICE
        assert "OptOutType" not in seen["params"]  # Advanced Opt-Out is off
        assert outcome["message"]["messaging_service_sid"] == SERVICE
        assert sandbox.state()["opted_out"] == [{"number": SERVICE, "recipient": SF_TEXTER}]
        for form in ({"MessagingServiceSid": SERVICE}, {"From": POOL_NUMBER},
                     {"From": VALID_FROM}):
            status, answer = await create(session, **form)
            assert (status, answer["code"]) == (400, 21610), form
        await text(session, "start", to=POOL_NUMBER)  # any number of the pool lifts it
        assert sandbox.state()["opted_out"] == []
        status, answer = await create(session, MessagingServiceSid=SERVICE)
        assert status == 201, answer

    run_with_app(scenario, mode="live-like")  # the pool's numbers are valid senders


def test_advanced_opt_out_names_the_keyword_it_answered_in_opt_out_type() -> None:
    """https://www.twilio.com/docs/messaging/tutorials/advanced-opt-out: OptOutType STOP,
    START or HELP for a keyword Twilio has answered, the service's own words included."""

    async def scenario(sandbox: TwilioSandbox, app: App, session: aiohttp.ClientSession) -> None:
        status, _ = await add_service(session, advanced_opt_out=True,
                                      keywords={"opt-out": ["arret"], "opt-in": ["REPRENDRE"]})
        assert status == 200
        bodies = ("ARRET", "help", "Reprendre", "STOP", "ARRET please")
        outcomes = [await text(session, body) for body in bodies]
        types = [seen["params"].get("OptOutType") for seen in app.seen]
        assert types == ["STOP", "HELP", "START", "STOP", None]
        assert [o["replies"][0]["body"] for o in outcomes[:4]] == [  # Twilio's own texts
            REPLIES[kind] for kind in ("opt-out", "help", "opt-in", "opt-out")]
        assert sandbox.state()["opted_out"] == [{"number": SERVICE, "recipient": SF_TEXTER}]

    run_with_app(scenario)


#: Twilio's default keywords, written out from
#: https://www.twilio.com/docs/messaging/tutorials/advanced-opt-out (opt-out and opt-in)
#: and https://www.twilio.com/docs/api/errors/23002 (help), as tests/test_opt_out_keywords.py
#: holds the app's list to them.
DOCUMENTED = {**dict.fromkeys(("STOP", "UNSUBSCRIBE", "END", "QUIT", "STOPALL", "REVOKE",
                               "OPTOUT", "CANCEL"), "opt-out"),
              **dict.fromkeys(("START", "YES", "UNSTOP"), "opt-in"),
              **dict.fromkeys(("HELP", "INFO"), "help")}


def test_the_sandbox_answers_each_documented_keyword_on_its_own() -> None:
    """The sandbox keeps its own copy of Twilio's keywords (it never reads the app's): each
    one texted, in any case, gets Twilio's reply for its kind, and opts out or back in."""

    async def scenario(sandbox: TwilioSandbox, app: App, session: aiohttp.ClientSession) -> None:
        for word, kind in DOCUMENTED.items():
            before = {"opt-out": "START", "opt-in": "STOP", "help": "STOP"}[kind]
            await text(session, before)  # from the other state, so the word must move it
            outcome = await text(session, f" {word.lower()} ")
            assert outcome["replies"][0]["body"] == REPLIES[kind], word
            assert sandbox.is_opted_out(VALID_FROM, SF_TEXTER) == (kind != "opt-in"), word

    run_with_app(scenario)


@pytest.mark.parametrize("fields", [
    {"sid": "MG123"}, {"numbers": []}, {"numbers": ["4155550100"]},
    {"advanced_opt_out": "yes"}, {"keywords": {"stop": ["ARRET"]}},
    {"keywords": {"opt-out": ["two words"]}}, {"colour": "red"},
], ids=["bad-sid", "no-numbers", "not-e164", "bad-switch", "bad-kind", "bad-word", "unknown"])
def test_a_malformed_messaging_service_is_refused(fields: dict[str, Any]) -> None:
    async def scenario(sandbox: TwilioSandbox, app: App, session: aiohttp.ClientSession) -> None:
        status, answer = await add_service(session, **fields)
        assert (status, answer["title"]) == (400, "Invalid field"), answer
        assert sandbox.messaging_services == {}

    run_with_app(scenario)


def test_a_number_belongs_to_one_messaging_service() -> None:
    async def scenario(sandbox: TwilioSandbox, app: App, session: aiohttp.ClientSession) -> None:
        assert (await add_service(session))[0] == 200
        status, _, answer = await act(session, "/_sandbox/messaging_services",
                                      {"sid": "MG" + "8" * 32, "numbers": [VALID_FROM]})
        assert status == 400 and VALID_FROM in answer["detail"]
        async with session.delete(f"/_sandbox/messaging_services/{SERVICE}",
                                  headers={"Content-Type": "application/json"}) as gone:
            assert gone.status == 200
        assert sandbox.messaging_services == {}

    run_with_app(scenario)


# --- row 7: sending through a Messaging Service -----------------------------------------


def test_a_service_message_is_queued_with_its_chosen_sender_and_counted_segments() -> None:
    """Created ``accepted`` with ``from`` null and ``num_segments`` 0
    (https://www.twilio.com/docs/messaging/api/message-resource, num_segments: "initially 0,
    since a sender hasn't yet been assigned"); then a callback for every change after
    creation, ``queued`` first, each naming the sender the service chose
    (https://www.twilio.com/docs/messaging/guides/outbound-message-status-in-status-callbacks)."""

    async def scenario(sandbox: TwilioSandbox, app: App, session: aiohttp.ClientSession) -> None:
        assert (await add_service(session, numbers=[POOL_NUMBER]))[0] == 200
        status, created = await create(session, MessagingServiceSid=SERVICE, Body="ж" * 71,
                                       StatusCallback=f"{app.base_url}/api/status_callback")
        assert status == 201
        assert (created["status"], created["from"], created["num_segments"]) == (
            "accepted", None, "0")
        sid = created["sid"]
        await until(lambda: sandbox.messages[0]["status"] == "delivered")
        await until(lambda: len([c for c in sandbox.callbacks_sent if c["answered"]]) == 3)
        reports = [c["params"] for c in sandbox.callbacks_sent if c["sid"] == sid]
        assert [r["MessageStatus"] for r in reports] == ["queued", "sent", "delivered"]
        assert {r["From"] for r in reports} == {POOL_NUMBER}
        assert {r["MessagingServiceSid"] for r in reports} == {SERVICE}
        message = sandbox.messages[0]
        assert (message["from"], message["num_segments"]) == (POOL_NUMBER, "2")  # UCS-2: 67
        assert message["date_sent"] is not None

    run_with_app(scenario)


def test_a_service_the_sandbox_was_not_told_of_sends_from_its_number() -> None:
    async def scenario(sandbox: TwilioSandbox) -> None:
        client = twilio(sandbox)
        message = await in_thread(client.messages.create, to=CUSTOMER, body="x",
                                  messaging_service_sid=SERVICE, status_callback=CALLBACK)
        assert (message.from_, message.num_segments) == (None, "0")
        await until(lambda: sandbox.messages[0]["status"] == "delivered")
        fetched = await in_thread(client.messages(message.sid).fetch)
        assert (fetched.from_, fetched.num_segments) == (VALID_FROM, "1")

    run(scenario)


# --- row 8: RawDlrDoneDate ----------------------------------------------------------------


@pytest.mark.parametrize(("to", "final"), [(SF_TEXTER, "delivered"),
                                           ("+15005553003", "undelivered")])
def test_receipt_callbacks_carry_the_carriers_done_date(to: str, final: str) -> None:
    """RawDlrDoneDate, ``YYMMDDhhmm``, on delivered and undelivered callbacks only
    (https://www.twilio.com/en-us/changelog/addition-of-rawdlrdonedate-to-delivered-and-undelivered-status-webhooks)."""

    async def scenario(sandbox: TwilioSandbox, app: App, session: aiohttp.ClientSession) -> None:
        before = datetime.now(UTC).replace(second=0, microsecond=0)
        status, _ = await create(session, To=to, From=VALID_FROM,
                                 StatusCallback=f"{app.base_url}/api/status_callback")
        assert status == 201
        await until(lambda: len([c for c in sandbox.callbacks_sent if c["answered"]]) == 2)
        after = datetime.now(UTC)
        sent, receipt = (c["params"] for c in sandbox.callbacks_sent if c["answered"])
        assert (sent["MessageStatus"], receipt["MessageStatus"]) == ("sent", final)
        assert "RawDlrDoneDate" not in sent
        done = receipt["RawDlrDoneDate"]
        assert re.fullmatch(r"[0-9]{10}", done), done
        assert before <= datetime.strptime(done, "%y%m%d%H%M").replace(tzinfo=UTC) <= after

    run_with_app(scenario)


# --- row 17: the sandbox's modes ----------------------------------------------------------


def test_test_mode_applies_the_magic_numbers_and_live_like_any_valid_number() -> None:
    """https://www.twilio.com/docs/iam/test-credentials: the magic numbers decide requests
    made with test credentials only; with live ones any valid number may be used."""

    async def scenario(sandbox: TwilioSandbox) -> None:
        client = twilio(sandbox)
        assert sandbox.state()["mode"] == "live-like"
        for sender, to in ((VALID_FROM, "+15005550001"), ("+14155550100", "+15005550002"),
                           (UK_TEXTER, CUSTOMER)):
            message = await in_thread(client.messages.create, to=to, from_=sender, body="x")
            assert message.status == "queued"
        call = await in_thread(client.calls.create, to="+15005550004", from_="+14155550100",
                               twiml="<Response/>")
        assert call.status == "queued"
        for kwargs, code in (({"to": "+1415555", "from_": VALID_FROM}, 21211),
                             ({"to": CUSTOMER, "from_": "+1415555"}, 21212)):
            error = await refused(client.messages.create, body="x", **kwargs)
            assert (error.status, error.code) == (400, code)
        error = await refused(client.calls.create, to="+99912", from_=VALID_FROM,
                              twiml="<Response/>")
        assert error.code == 21217

    run(scenario, mode="live-like", fetch_twiml=False, status_callbacks=False)

    async def magic(sandbox: TwilioSandbox) -> None:
        assert sandbox.state()["mode"] == "test"
        error = await refused(twilio(sandbox).messages.create, to="+15005550001",
                              from_=VALID_FROM, body="x")
        assert error.code == 21211

    run(magic)


def test_the_mode_is_chosen_on_the_command_line() -> None:
    base = ["--account-sid", "AC" + "1" * 32, "--auth-token", "t"]
    assert parse_args(base).mode == "test"
    assert parse_args([*base, "--live-like"]).mode == "live-like"
    service = parse_args([*base, "--messaging-service", SERVICE, "--advanced-opt-out"])
    assert service.messaging_service.to_json() == {
        "sid": SERVICE, "numbers": [VALID_FROM], "advanced_opt_out": True, "keywords": {}}
    with pytest.raises(ValueError, match="mode"):
        TwilioSandbox(accounts={"AC" + "1" * 32: "t"}, mode="live")


@pytest.mark.parametrize(("argv", "said"), [
    (["--advanced-opt-out"], "--advanced-opt-out needs --messaging-service"),
    (["--messaging-service", "MG1"], "--messaging-service: 'sid' must be"),
])
def test_a_messaging_service_option_without_a_service_is_refused(
        argv: list[str], said: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--account-sid", "AC" + "1" * 32, "--auth-token", "t", *argv])
    assert said in capsys.readouterr().err
