"""Messaging as Twilio does it, end to end through `make run`'s pieces (host, sandbox, Azurite).

The app sends through a Messaging Service (``--sandbox-messaging-service``), the
texter's keywords reach it signed with what Twilio really sends
(``MessagingServiceSid``, ``OptOutType``, the numbers' whereabouts), and the app
answers as Twilio's rules want: an opt-out refused before Twilio is asked, a
keyword never answered twice. Each test names the Twilio page it follows.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import unique
from harness import ACCOUNT_SID, AUTH_TOKEN
from live import LiveApp
from test_delivery_e2e import http, statuses, wait_for_status

from devhost.easy_auth import bearer
from twilio_sandbox import VALID_FROM
from twilio_sandbox.keywords import REPLIES

ENV = {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
       "SMS_REPLY_MESSAGE": "Got it, thanks"}
ALICE = {"Authorization": bearer("alice")}
OPTED_OUT = "urn:twilio-functions:problem:recipient-opted-out"


@pytest.fixture(scope="module")
def service_app() -> Iterator[LiveApp]:
    """`make run` whose sandbox number is in a Messaging Service the app sends through."""
    running = LiveApp(ENV, args=("--sandbox", "--auth", "--sandbox-messaging-service"))
    yield running
    assert running.stop() == 0
    assert "status=500" not in running.log()


@pytest.fixture(scope="module")
def live_like() -> Iterator[LiveApp]:
    running = LiveApp(ENV, args=("--sandbox", "--sandbox-mode", "live-like"))
    yield running
    assert running.stop() == 0


def service_of(app: LiveApp) -> str:
    [service] = app.state()["messaging_services"]
    assert service["numbers"] == [VALID_FROM]
    return service["sid"]


def send(app: LiveApp, to: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    status, answer, _ = http("POST", f"{app.base_url}/api/send_sms",
                             {"to": to, "body": "Your order shipped"}, headers)
    return status, answer


def text(app: LiveApp, sender: str, body: str) -> tuple[dict[str, str], list[str]]:
    """The texter's SMS through the sandbox: what the app was sent, and every reply."""
    outcome = app.sandbox("POST", "/_sandbox/inbound/sms", {"from": sender, "body": body})
    assert outcome["webhook"]["answer"]["status"] == 200, outcome
    return dict(outcome["webhook"]["params"]), [r["body"] for r in outcome["replies"]]


def refused_before_twilio(app: LiveApp, to: str) -> None:
    """send_sms answers 403 recipient-opted-out and Twilio never hears of it."""
    asked = app.state()["requests"]
    status, problem = send(app, to, ALICE)
    assert (status, problem["type"]) == (403, OPTED_OUT), problem
    assert app.state()["requests"] == asked


def test_a_service_send_reports_queued_from_its_sender_then_the_carriers_receipt(service_app):
    """https://www.twilio.com/docs/messaging/guides/outbound-message-status-in-status-callbacks:
    created ``accepted``, a callback for each change after, ``From`` the chosen sender;
    RawDlrDoneDate on the receipt (Twilio changelog, 2023-02-14)."""
    status, sent = send(service_app, unique.number(), ALICE)
    assert status == 201, sent
    assert (sent["status"], sent["from"]) == ("accepted", None)  # no sender chosen yet
    view = wait_for_status(service_app, sent["sid"], "delivered", ALICE)
    assert statuses(view) == ["accepted", "queued", "sent", "delivered"]
    reports = [c for c in service_app.state()["status_callbacks"] if c["sid"] == sent["sid"]]
    assert [(c["status"], c["params"]["From"], c["answered"]) for c in reports] == [
        ("queued", VALID_FROM, 204), ("sent", VALID_FROM, 204), ("delivered", VALID_FROM, 204)]
    assert re.fullmatch(r"[0-9]{10}", reports[-1]["params"]["RawDlrDoneDate"])

    status, failing = send(service_app, "+15005553003", ALICE)
    view = wait_for_status(service_app, failing["sid"], "undelivered", ALICE)
    assert view["error_code"] == 30003
    [receipt] = [c["params"] for c in service_app.state()["status_callbacks"]
                 if c["sid"] == failing["sid"] and c["status"] == "undelivered"]
    assert re.fullmatch(r"[0-9]{10}", receipt["RawDlrDoneDate"])


@pytest.mark.parametrize("word", ["REVOKE", "OPTOUT"])
def test_revoke_and_optout_opt_out_of_the_service_until_start(service_app, word):
    """Twilio's default opt-out keywords include REVOKE and OPTOUT
    (https://www.twilio.com/docs/messaging/tutorials/advanced-opt-out); to a number of a
    Messaging Service the webhook names the service
    (https://www.twilio.com/docs/messaging/guides/webhook-request) and the opt-out holds
    for all of it (https://help.twilio.com/articles/223133627)."""
    service, texter = service_of(service_app), unique.number()
    assert send(service_app, texter, ALICE)[0] == 201
    params, replies = text(service_app, texter, word.lower())
    assert params["MessagingServiceSid"] == service
    assert (params["FromCountry"], params["FromZip"], params["ToCountry"]) == ("US", "", "US")
    assert "OptOutType" not in params  # Advanced Opt-Out is off
    assert replies == [REPLIES["opt-out"]]  # Twilio's text; the app does not answer too
    assert {"number": service, "recipient": texter} in service_app.state()["opted_out"]
    refused_before_twilio(service_app, texter)  # sent through the service, its line

    _, replies = text(service_app, texter, "START")
    assert replies == [REPLIES["opt-in"]]
    assert send(service_app, texter, ALICE)[0] == 201
    _, replies = text(service_app, texter, "thanks")
    assert replies == ["Got it, thanks"]


def test_advanced_opt_out_keywords_reach_the_app_as_opt_out_type(service_app):
    """With Advanced Opt-Out on, Twilio answers the service's own keywords and says which in
    OptOutType (https://www.twilio.com/docs/messaging/tutorials/advanced-opt-out): the app
    knows ARRET only from it."""
    service, texter = service_of(service_app), unique.number()
    config = {"sid": service, "numbers": [VALID_FROM]}
    service_app.sandbox("POST", "/_sandbox/messaging_services", {
        **config, "advanced_opt_out": True,
        "keywords": {"opt-out": ["ARRET"], "opt-in": ["REPRENDRE"]}})
    try:
        assert send(service_app, texter, ALICE)[0] == 201
        params, replies = text(service_app, texter, "Arret")
        assert params["OptOutType"] == "STOP"
        assert replies == [REPLIES["opt-out"]]  # not the app's "Got it, thanks" as well
        refused_before_twilio(service_app, texter)
        params, replies = text(service_app, texter, "REPRENDRE")
        assert (params["OptOutType"], replies) == ("START", [REPLIES["opt-in"]])
        assert send(service_app, texter, ALICE)[0] == 201
    finally:
        service_app.sandbox("POST", "/_sandbox/messaging_services", config)


def test_magic_numbers_decide_only_in_test_mode(service_app, live_like):
    """https://www.twilio.com/docs/iam/test-credentials: +15005550001 is an invalid 'To'
    with test credentials (21211); a live-like sandbox takes any valid number."""
    status, problem = send(service_app, "+15005550001", ALICE)
    assert (status, problem["twilio_code"]) == (400, 21211), problem
    assert "Sandbox mode: live-like" in "".join(live_like.stdout_lines)
    assert live_like.state()["mode"] == "live-like"
    status, sent = send(live_like, "+15005550001")
    assert status == 201, sent
