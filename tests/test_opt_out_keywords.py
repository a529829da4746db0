"""Opt-out keywords held against Twilio's documented lists, through ``twiml`` and ``send_sms``.

The lists are written out here, from Twilio's page, not read from the app:
https://www.twilio.com/docs/messaging/tutorials/advanced-opt-out (opt-out STOP,
UNSUBSCRIBE, END, QUIT, STOPALL, REVOKE, OPTOUT, CANCEL; opt-in START, YES,
UNSTOP; help HELP, INFO). Twilio matches the whole message, trimmed, in any
case. A keyword that reaches a number of a Messaging Service opts the sender
out of (or back into) the number and the service both.
"""

from __future__ import annotations

import secrets

import pytest
from harness import refused
from test_two_way_sms import (  # noqa: F401 - on_azure: the autouse fixture
    ALICE,
    OTHER_LINE,
    inbound_params,
    number,
    on_azure,
    receive,
    replies,
    send,
    sent,
)

OPT_OUT = ("STOP", "UNSUBSCRIBE", "END", "QUIT", "STOPALL", "REVOKE", "OPTOUT", "CANCEL")
OPT_IN = ("START", "YES", "UNSTOP")
HELP = ("HELP", "INFO")
NOT_KEYWORDS = ("Please stop", "stop it", "STOP STOP", "Yes please", "unsubscribe me",
                "HELP ME", "STOPPED", "")


def spelled(word: str, n: int) -> str:
    """The keyword as a texter may type it: any case, with spaces around."""
    return (word, f"  {word.lower()}\n", word.capitalize(), f"{word.title()} ")[n % 4]


def opted_out(to: str) -> bool:
    """Whether send_sms refuses ``to`` as opted out (before Twilio), else sends."""
    response = send(to, ALICE)
    if response.status_code == 201:
        return False
    refused(response, 403, "recipient-opted-out")
    return True


@pytest.mark.parametrize("word", OPT_OUT)
def test_each_opt_out_keyword_stops_sending_and_each_opt_in_keyword_resumes_it(app_env, word):
    remote = number()
    sent(remote, ALICE)
    for n, again in enumerate(OPT_IN):
        assert replies(receive(inbound_params(remote, spelled(word, n)))) == []
        before = len(app_env.messages)
        assert opted_out(remote), (word, n)
        assert len(app_env.messages) == before  # refused before Twilio
        assert replies(receive(inbound_params(remote, spelled(again, n)))) == []
        assert not opted_out(remote), again


@pytest.mark.parametrize("body", [*HELP, *NOT_KEYWORDS])
def test_help_and_other_messages_opt_nobody_out(monkeypatch, body):
    monkeypatch.setenv("SMS_REPLY_MESSAGE", "We read every message")
    remote = number()
    sent(remote, ALICE)
    answer = replies(receive(inbound_params(remote, body)))
    # Twilio answers its keywords itself: the app's reply goes to anything else only.
    assert answer == ([] if body in HELP else ["We read every message"])
    assert not opted_out(remote)


def test_a_keyword_through_a_messaging_service_holds_for_the_service_and_the_number(
        app_env, monkeypatch):
    """STOP to a number of a Messaging Service: sends through the service are refused
    too (Twilio's opt-out applies to the whole service), and START lifts both."""
    service = "MG" + secrets.token_hex(16)
    remote = number()
    sent(remote, ALICE)
    assert replies(receive(inbound_params(remote, "Stop", MessagingServiceSid=service))) == []

    assert opted_out(remote)  # from the number
    monkeypatch.setenv("TWILIO_MESSAGING_SERVICE_SID", service)
    before = len(app_env.messages)
    assert opted_out(remote)  # through the service
    assert len(app_env.messages) == before

    receive(inbound_params(remote, "start", MessagingServiceSid=service))
    assert not opted_out(remote)  # through the service
    monkeypatch.delenv("TWILIO_MESSAGING_SERVICE_SID")
    assert not opted_out(remote)  # from the number


def test_a_keyword_to_another_number_leaves_this_one_alone():
    remote = number()
    sent(remote, ALICE)
    receive(inbound_params(remote, "STOP", to=OTHER_LINE))
    assert not opted_out(remote)  # send_sms sends from FROM_NUMBER
