"""The edge every function shares (shared/responses.py): the answer, the one outcome log
line, and nothing kept alive once ``main`` returns."""

from __future__ import annotations

import gc
import logging
import weakref

import pytest
from harness import APP_URL, SECRETS, created, invoke, problem, request

import shared.messages

TO = "+14155552671"
TEXT = "Meet me at the north gate"
UNMASKED = "+14155552671"


def post(function, body):
    return invoke(function, request("POST", f"{APP_URL}/{function}", json_body=body))


def outcome_lines(caplog):
    return [r for r in caplog.records
            if r.name == "twilio_functions" and " status=" in r.getMessage()]


@pytest.fixture
def logs(caplog):
    caplog.set_level(logging.DEBUG, logger="twilio_functions")
    return caplog


def the_outcome(logs):
    [record] = outcome_lines(logs)
    line = record.getMessage()
    assert TEXT not in line and UNMASKED not in line
    return record.levelno, line


# --- the outcome line's contract --------------------------------------------------------


def test_a_201_is_logged_at_info_with_the_sid_and_the_masked_number(app_env, logs):
    body = created(post("send_sms", {"to": TO, "body": TEXT}))
    level, line = the_outcome(logs)
    assert level == logging.INFO
    assert line == f"function=send_sms status=201 sid={body['sid']} to=+1•••••••2671"


def test_a_refused_destination_says_which_field_and_why(app_env, logs):
    response = post("send_sms", {"to": "+19005551234", "body": TEXT})
    assert response.status_code == 403
    level, line = the_outcome(logs)
    assert level == logging.WARNING
    assert line == ("function=send_sms status=403 problem=destination-refused field=to "
                    "cause=premium-rate_numbers_are_not_allowed")


def test_a_destination_outside_the_countries_says_which_country(app_env, logs, monkeypatch):
    monkeypatch.setenv("ALLOWED_COUNTRIES", "US,CA")
    assert post("make_call", {"to": "+18765550123"}).status_code == 403  # Jamaica, +1 876
    _, line = the_outcome(logs)
    assert line.endswith("field=to cause=destination_country_JM_is_not_allowed")
    assert "+18765550123" not in line


def test_a_refused_sender_says_which_field_and_why(app_env, logs):
    assert post("send_sms", {"to": TO, "body": TEXT, "from": "+14155550100"}).status_code == 403
    level, line = the_outcome(logs)
    assert level == logging.WARNING
    assert "problem=sender-refused field=from cause=not_a_number_this_app_may_send_from" in line
    assert "+14155550100" not in line


@pytest.mark.parametrize(("payload", "field"), [
    ({"to": TO, "voice": "robot"}, "voice"),
    ({"to": TO, "message": "x" * 1001}, "message"),
    ({"to": TO, "Message to grandma: " + TEXT: "x"}, "(hidden)"),
])
def test_an_invalid_field_is_named_unless_its_name_is_the_clients_text(app_env, logs, payload,
                                                                       field):
    assert post("make_call", payload).status_code == 400
    level, line = the_outcome(logs)
    assert level == logging.WARNING
    assert line == f"function=make_call status=400 problem=invalid-field field={field}"


def test_a_twilio_refusal_is_a_4xx_with_twilios_code(app_env, logs):
    assert post("send_sms", {"to": "+15005550001", "body": TEXT}).status_code == 400
    level, line = the_outcome(logs)
    assert level == logging.WARNING
    assert line == ("function=send_sms status=400 problem=twilio-refused twilio_code=21211 "
                    "cause=TwilioRestException_400")


@pytest.mark.parametrize(("fault", "status", "expected"), [
    ({"kind": "status", "status": 500}, 502,
     "problem=twilio-unavailable twilio_code=20500 cause=TwilioRestException_500"),
    ({"kind": "delay", "delay": 3.5}, 504, "problem=twilio-timeout cause=TimeoutError"),
], ids=["502", "504"])
def test_an_upstream_failure_is_logged_at_error_with_the_cause(app_env, logs, fault, status,
                                                               expected):
    app_env.fault(count=1, **fault)
    assert post("make_call", {"to": TO, "message": TEXT}).status_code == status
    level, line = the_outcome(logs)
    assert level == logging.ERROR
    assert line == f"function=make_call status={status} {expected}"


# --- the unexpected ---------------------------------------------------------------------


def test_an_unexpected_exception_is_a_500_with_the_traceback_in_the_log_only(app_env, logs,
                                                                             monkeypatch):
    def broken(settings):
        raise KeyError("unexpected-marker")

    monkeypatch.setattr(shared.messages, "client_for", broken)
    response = post("send_sms", {"to": TO, "body": TEXT})

    assert response.status_code == 500
    document = problem(response)
    assert document["type"] == "urn:twilio-functions:problem:internal-error"
    text = response.get_body().decode()
    assert "unexpected-marker" not in text and "Traceback" not in text and "broken" not in text
    [failure] = [r for r in logs.records if r.exc_info]
    assert failure.levelno == logging.ERROR
    assert "unexpected-marker" in logs.text and "in broken" in logs.text
    level, line = the_outcome(logs)
    assert (level, line) == (logging.ERROR, "function=send_sms status=500 problem=internal-error")
    assert not any(secret in logs.text for secret in SECRETS)


# --- nothing kept alive (issue point 9) -------------------------------------------------


@pytest.mark.parametrize(("function", "payload", "fault", "status"), [
    ("send_sms", {"to": TO, "body": "x", "voice": "?"}, None, 400),
    ("make_call", {"to": "+19005551234"}, None, 403),
    ("send_sms", {"to": "+15005550001", "body": "x"}, None, 400),
    ("make_call", {"to": TO}, {"kind": "status", "status": 500}, 502),
    ("send_sms", {"to": TO, "body": "x"}, {"kind": "drop"}, 502),
    ("make_call", {"to": TO}, {"kind": "delay", "delay": 3.5}, 504),
], ids=["invalid-field", "destination", "twilio-refused", "twilio-500", "dropped", "timeout"])
def test_a_refused_request_is_freed_when_main_returns(app_env, function, payload, fault, status):
    """Without a garbage collection: no reference cycle may hold the request (and its body)."""
    if fault:
        app_env.fault(count=1, **fault)
    gc.collect()
    gc.disable()
    try:
        req = request("POST", f"{APP_URL}/{function}", json_body=payload)
        alive = weakref.ref(req)
        assert invoke(function, req).status_code == status
        del req
        assert alive() is None, [type(r).__name__ for r in gc.get_referrers(alive())]
    finally:
        gc.enable()
