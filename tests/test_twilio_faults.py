"""What a client gets when Twilio fails, for both outgoing functions."""

from __future__ import annotations

import time

import pytest
from harness import APP_URL, SECRETS, created, invoke, problem, request

CASES = {
    "send_sms": {"to": "+14155552671", "body": "hello"},
    "make_call": {"to": "+14155552671"},
}


def call(function):
    return invoke(function, request("POST", f"{APP_URL}/{function}", json_body=CASES[function]))


@pytest.fixture(params=sorted(CASES))
def function(request):
    return request.param


@pytest.mark.parametrize(
    ("fault", "status", "slug"),
    [
        ({"kind": "status", "status": 500}, 502, "twilio-unavailable"),
        ({"kind": "status", "status": 503}, 502, "twilio-unavailable"),
        ({"kind": "status", "status": 401}, 502, "twilio-credentials"),
        ({"kind": "drop"}, 502, "twilio-unavailable"),
        ({"kind": "malformed"}, 502, "twilio-unavailable"),
        ({"kind": "delay", "delay": 3.5}, 504, "twilio-timeout"),
    ],
)
def test_upstream_failures(app_env, function, fault, status, slug):
    app_env.fault(count=1, **fault)
    started = time.monotonic()
    response = call(function)
    elapsed = time.monotonic() - started

    assert response.status_code == status
    document = problem(response)
    assert document["type"].endswith(slug)
    assert not any(secret in response.get_body().decode() for secret in SECRETS)
    assert elapsed < 2 + 1  # TWILIO_TIMEOUT_SECONDS + 1: a bound, not a benchmark
    created(call(function))  # the next request works again


def test_rate_limit_passes_retry_after(app_env, function):
    app_env.fault(kind="rate_limit", retry_after=7, count=1)
    response = call(function)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert problem(response)["twilio_code"] == 20429


def test_wrong_credentials_are_502_without_secrets(app_env, function, monkeypatch):
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "wrong-token")
    response = call(function)
    assert response.status_code == 502
    text = response.get_body().decode()
    assert "wrong-token" not in text
    assert problem(response)["type"].endswith("twilio-credentials")


@pytest.mark.parametrize("status", ["abc", None, 302])
def test_unreadable_twilio_error_statuses_are_upstream_failures(status):
    from twilio.base.exceptions import TwilioServiceException

    from shared.twilio_errors import problem_for

    error = TwilioServiceException("about:blank", {"odd": 1}, status, 20001)
    problem = problem_for(error)
    assert problem is not None and problem.status == 502
