"""Twilio failing, seen from a mobile app: the launcher, the runtime and the sandbox over HTTP.

tests/test_twilio_faults.py proves the mapping in-process; this proves it end
to end, where the aiohttp session, its connection pool and the host sit in
between: each fault gets its documented status and problem type, no request
takes longer than TWILIO_TIMEOUT_SECONDS + 1 s (a bound the issue requires, not
a benchmark), and the host serves a normal request right after each fault.

401 (bad credentials) is a second host, ``python -m devhost.host``, pointed at
the first app's sandbox with another auth token, rather than an injected 401:
an injected ``status`` fault only replays a canned answer (already covered
in-process), while a real mismatch runs the whole credential path: the app
builds its Basic auth from its settings, the sandbox checks it as Twilio does
and answers 401/20003, and the wrong token must not surface in the answer or
the log. The launcher cannot do this, since in --sandbox mode it gives the
sandbox the app's own token.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from harness import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER
from live import LiveApp
from twilio.request_validator import RequestValidator

TIMEOUT_SECONDS = 2
BOUND_SECONDS = TIMEOUT_SECONDS + 1
ENV = {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
       "TWILIO_TIMEOUT_SECONDS": str(TIMEOUT_SECONDS)}
WRONG_TOKEN = "fake-wrong-auth-token-s3cr3t-0003"
PROBLEM = "urn:twilio-functions:problem:"
REQUESTS = {
    "send_sms": {"to": "+14155552671", "body": "Your order has shipped"},
    "make_call": {"to": "+14155552671", "message": "Your table is ready"},
}


def timed_post(base_url: str, function: str, body: dict[str, Any] | None = None,
               ) -> tuple[int, Any, bytes]:
    """POST JSON; every request of this module must answer within the bound."""
    data = json.dumps(body or REQUESTS[function]).encode()
    req = urllib.request.Request(f"{base_url}/api/{function}", data=data, method="POST",
                                 headers={"Content-Type": "application/json"})
    started = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=BOUND_SECONDS * 3) as response:
            answer = response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        answer = error.code, error.headers, error.read()
    elapsed = time.monotonic() - started
    assert elapsed < BOUND_SECONDS, f"{function} took {elapsed:.2f} s"
    return answer


def problem(status: int, headers: Any, body: bytes, slug: str) -> dict[str, Any]:
    assert headers["Content-Type"] == "application/problem+json", body
    document = json.loads(body)
    assert document["type"] == PROBLEM + slug
    assert document["status"] == status
    assert {"title", "detail"} <= document.keys()
    return document


def records(state: dict[str, Any]) -> int:
    return len(state["messages"]) + len(state["calls"])


def serves_normally(base_url: str, function: str) -> None:
    status, _, body = timed_post(base_url, function)
    assert status == 201, body


@pytest.fixture(scope="module")
def app() -> Iterator[LiveApp]:
    running = LiveApp(ENV)
    yield running
    assert running.stop() == 0


@pytest.fixture(autouse=True)
def no_faults_left(app: LiveApp) -> Iterator[None]:
    app.sandbox("DELETE", "/_sandbox/faults")
    yield
    app.sandbox("DELETE", "/_sandbox/faults")


@pytest.fixture(params=sorted(REQUESTS))
def function(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.mark.parametrize(
    ("fault", "status", "slug", "twilio_code"),
    [
        ({"kind": "status", "status": 500}, 502, "twilio-unavailable", 20500),
        ({"kind": "status", "status": 503}, 502, "twilio-unavailable", 20503),
        ({"kind": "drop"}, 502, "twilio-unavailable", None),
        ({"kind": "malformed"}, 502, "twilio-unavailable", None),
        ({"kind": "delay", "delay": 3.5}, 504, "twilio-timeout", None),
    ],
    ids=["500", "503", "drop", "malformed", "delay"],
)
def test_upstream_failure_is_a_bounded_problem(app: LiveApp, function: str,
                                               fault: dict[str, Any], status: int, slug: str,
                                               twilio_code: int | None) -> None:
    before = app.state()
    app.sandbox("POST", "/_sandbox/faults", {**fault, "count": 1})

    answer = timed_post(app.base_url, function)

    assert answer[0] == status, answer[2]
    document = problem(*answer, slug)
    assert document.get("twilio_code") == twilio_code
    applied = app.state()["faults_applied"][fault["kind"]]
    assert applied == before["faults_applied"][fault["kind"]] + 1  # this request was hit
    serves_normally(app.base_url, function)
    # The faulted request created nothing, except a delayed one: Twilio finishes it late.
    late = 1 if fault["kind"] == "delay" else 0
    state = app.wait_for(lambda s: records(s) >= records(before) + 1 + late)
    assert records(state) == records(before) + 1 + late


def test_rate_limit_keeps_twilios_retry_after(app: LiveApp, function: str) -> None:
    app.sandbox("POST", "/_sandbox/faults", {"kind": "rate_limit", "retry_after": 7, "count": 1})

    status, headers, body = timed_post(app.base_url, function)

    assert status == 429
    assert headers["Retry-After"] == "7"
    assert problem(status, headers, body, "twilio-rate-limited")["twilio_code"] == 20429
    serves_normally(app.base_url, function)


def test_a_timeout_does_not_mean_nothing_was_sent(app: LiveApp) -> None:
    """Twilio finishes what the app gave up on: the 504's SMS still goes out, once.

    So a client must not treat 504 as "not sent" and blindly retry (see the report).
    """
    app.sandbox("POST", "/_sandbox/faults", {"kind": "delay", "delay": 2.5, "count": 1})
    marker = f"late-{time.monotonic_ns()}"

    status, _, _ = timed_post(app.base_url, "send_sms", {"to": "+14155552671", "body": marker})

    assert status == 504
    state = app.wait_for(lambda s: any(m["body"] == marker for m in s["messages"]))
    assert sum(m["body"] == marker for m in state["messages"]) == 1


@pytest.fixture(scope="module")
def wrong_credentials(app: LiveApp) -> Iterator[LiveApp]:
    """A second host whose auth token is not the one the first app's sandbox knows."""
    env = {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": WRONG_TOKEN,
           "TWILIO_FROM_NUMBER": FROM_NUMBER, "TWILIO_API_BASE_URL": app.sandbox_url or "",
           "TWILIO_TIMEOUT_SECONDS": str(TIMEOUT_SECONDS), "TWILIO_API_KEY_SID": "",
           "TWILIO_API_KEY_SECRET": "", "TWILIO_MESSAGING_SERVICE_SID": "", "PUBLIC_BASE_URL": ""}
    running = LiveApp(env, args=(), module="devhost.host")
    yield running
    assert running.stop() == 0


def test_bad_credentials_are_a_502_without_the_token(app: LiveApp, wrong_credentials: LiveApp,
                                                     function: str) -> None:
    recorded = app.state()
    status, headers, body = timed_post(wrong_credentials.base_url, function)

    assert status == 502
    assert problem(status, headers, body, "twilio-credentials")["twilio_code"] == 20003
    assert WRONG_TOKEN not in body.decode() + str(headers)
    after = app.state()
    assert after["requests"] == recorded["requests"] + 1  # it did reach the sandbox...
    assert records(after) == records(recorded)  # ...which created nothing
    serves_normally(app.base_url, function)  # the sandbox and the first app are fine


def test_the_misconfigured_host_keeps_serving(wrong_credentials: LiveApp) -> None:
    for function in sorted(REQUESTS):  # still a consistent 502, not a broken state
        assert timed_post(wrong_credentials.base_url, function)[0] == 502
    url = f"{wrong_credentials.base_url}/api/twiml?message=still+here"
    signature = RequestValidator(WRONG_TOKEN).compute_signature(url, {})
    req = urllib.request.Request(url, headers={"X-Twilio-Signature": signature})
    with urllib.request.urlopen(req, timeout=10) as response:
        assert response.status == 200
        assert b"still here" in response.read()
    assert WRONG_TOKEN not in wrong_credentials.log()
