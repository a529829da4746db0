"""The rules a status report follows, whoever stores it: forward only, once, terminal is final."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.delivery_status import Delivery, StatusReport, read_report
from shared.problems import Problem

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
ACCOUNT = "AC" + "1" * 32


def delivery(kind: str = "sms", status: str = "queued") -> Delivery:
    return Delivery.created_now("SM" + "0" * 32, kind, "anonymous", "+14155552671", status, T0)


def apply(target: Delivery, status: str, sequence: int | None = None, token: str | None = None,
          **extra) -> bool:
    report = StatusReport(target.sid, target.kind, status, T0, sequence=sequence, token=token,
                          **extra)
    return target.apply(report, T0 + timedelta(seconds=1))


@pytest.mark.parametrize(("order", "final"), [
    (["sent", "delivered"], "delivered"),
    (["delivered", "sent"], "delivered"),
    (["sent", "undelivered", "delivered"], "undelivered"),
    (["failed", "sent"], "failed"),
    (["delivered", "read"], "read"),
    (["delivered", "undelivered"], "delivered"),
    (["failed", "read"], "failed"),
    (["sending", "accepted"], "sending"),
])
def test_a_message_moves_forward_only(order, final):
    target = delivery()
    for status in order:
        assert apply(target, status)
    assert target.status == final
    assert [e.status for e in target.history] == ["queued", *order]  # every report kept


@pytest.mark.parametrize(("order", "final"), [
    ([("initiated", 0), ("ringing", 1), ("in-progress", 2), ("completed", 3)], "completed"),
    ([("completed", 3), ("in-progress", 2), ("ringing", 1)], "completed"),
    ([("ringing", 1), ("initiated", 0)], "ringing"),
    ([("ringing", 1), ("busy", 2), ("in-progress", 3)], "busy"),
    ([("in-progress", 5), ("ringing", 6)], "in-progress"),  # never backwards, whatever the number
])
def test_a_call_follows_sequence_numbers_and_terminal_states_stay(order, final):
    target = delivery("call")
    for status, sequence in order:
        apply(target, status, sequence)
    assert target.status == final
    sequences = [e.sequence for e in target.history[1:]]
    assert sequences == sorted(sequences)  # history in the order the events happened


def test_duplicates_by_token_or_by_status_and_sequence_change_nothing():
    target = delivery("call")
    assert apply(target, "ringing", 1, token="a")
    assert not apply(target, "ringing", 1, token="a")
    assert not apply(target, "ringing", 1, token="b")
    assert not apply(target, "in-progress", 2, token="a")  # a token is one report, whatever it says
    assert apply(target, "in-progress", 2, token="c")
    assert [e.status for e in target.history] == ["queued", "ringing", "in-progress"]


def test_error_codes_and_durations_are_kept():
    sms = delivery()
    apply(sms, "undelivered", error_code=30003)
    assert sms.view()["more_info"] == "https://www.twilio.com/docs/errors/30003"
    call = delivery("call")
    apply(call, "completed", 4, duration=61)
    assert (call.view()["duration"], call.view()["error_code"]) == (61, None)


def test_an_unknown_status_is_history_only():
    target = delivery()
    assert apply(target, "teleported")
    assert target.status == "queued" and target.history[-1].status == "teleported"


def test_reports_are_read_from_twilios_fields():
    received = T0 + timedelta(seconds=10)
    report = read_report({"AccountSid": ACCOUNT, "CallSid": "CA" + "a" * 32,
                          "CallStatus": "completed", "SequenceNumber": "3", "CallDuration": "12",
                          "Timestamp": "Fri, 02 Jan 2026 03:04:07 +0000"},
                         {"I-Twilio-Idempotency-Token": "tok"}, received)
    assert (report.kind, report.status, report.sequence, report.duration, report.token) == (
        "call", "completed", 3, 12, "tok")
    assert report.at == T0 + timedelta(seconds=2, milliseconds=999)  # within its second
    message = read_report({"AccountSid": ACCOUNT, "MessageSid": "SM" + "b" * 32,
                           "MessageStatus": "undelivered", "ErrorCode": "30005"}, {}, received)
    assert (message.kind, message.error_code, message.at, message.token) == (
        "sms", 30005, received, None)


@pytest.mark.parametrize("params", [
    {"MessageSid": "SM123", "MessageStatus": "sent"},
    {"MessageSid": "SM" + "b" * 32, "MessageStatus": "<sent>"},
    {"CallSid": "CA" + "a" * 32, "CallStatus": "completed", "SequenceNumber": "-1"},
    {"CallSid": "CA" + "a" * 32},
])
def test_malformed_reports_are_refused(params):
    with pytest.raises(Problem) as refused:
        read_report({**params, "AccountSid": ACCOUNT}, {}, T0)
    assert refused.value.status == 400


def test_a_report_naming_no_account_is_refused():
    with pytest.raises(Problem) as refused:
        read_report({"MessageSid": "SM" + "b" * 32, "MessageStatus": "sent"}, {}, T0)
    assert (refused.value.status, refused.value.type, refused.value.extensions["field"]) == (
        403, "urn:twilio-functions:problem:webhook-refused", "AccountSid")


def call_with_leg_reports() -> Delivery:
    return Delivery.created_now("CA" + "0" * 32, "call", "anonymous", "client:alice",
                                "initiated", T0)


def test_a_legs_completion_first_leaves_the_calls_duration_and_error_to_the_call():
    call = call_with_leg_reports()
    assert apply(call, "in-progress", leg=True)
    assert apply(call, "completed", leg=True, duration=5, error_code=31005)
    assert (call.status, call.duration, call.error_code) == ("completed", None, None)
    assert apply(call, "completed", 4, duration=61, error_code=31005)  # the call's own report
    assert (call.duration, call.error_code, call.sequence) == (61, 31005, 4)
    assert [(e.status, e.sequence) for e in call.history] == [
        ("initiated", None), ("in-progress", None), ("completed", 4)]  # told once
    assert not apply(call, "completed", 4, duration=61)  # and seen once


def test_a_legs_completion_after_the_calls_changes_nothing():
    call = call_with_leg_reports()
    assert apply(call, "completed", 4, duration=61)
    assert not apply(call, "completed", leg=True, duration=5, error_code=31005)
    assert (call.status, call.duration, call.error_code) == ("completed", 61, None)
    assert [e.status for e in call.history] == ["initiated", "completed"]
