"""What a client gets when Twilio fails, for both outgoing functions."""

from __future__ import annotations

import asyncio
import socket
import time

import azure.functions as func
import pytest
from harness import APP_URL, SECRETS, created, function_main, invoke, problem, request

import shared.twilio_client
from shared.settings import app_settings
from shared.twilio_client import client_for, close_clients

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
        ({"kind": "status", "status": 403}, 502, "twilio-credentials"),
        ({"kind": "status", "status": 404}, 502, "twilio-unavailable"),
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


# --- a 504 says whether the request reached Twilio (issue point 11) ----------------------

MAY_HAVE_BEEN_CREATED = "may still have been created"
MARKED_FIELD = {"make_call": "message", "send_sms": "body"}


def records(sandbox, function):
    return sandbox.calls if function == "make_call" else sandbox.messages


def test_a_timeout_after_sending_says_it_may_have_been_created(app_env, function):
    app_env.fault(kind="delay", delay=3.5, count=1)
    response = call(function)
    assert response.status_code == 504
    assert MAY_HAVE_BEEN_CREATED in problem(response)["detail"]
    deadline = time.monotonic() + 5
    while not records(app_env, function) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(records(app_env, function)) == 1  # and so it was, once Twilio got to it


def test_a_timeout_waiting_for_a_pooled_connection_says_nothing_was_sent(
        app_env, function, monkeypatch):
    """The real twilio library and aiohttp pool, one connection wide: while a slow request
    holds it, the function's request waits for it past TWILIO_TIMEOUT_SECONDS (2 s)."""
    monkeypatch.setattr(shared.twilio_client, "POOL_SIZE", 1)
    app_env.fault(kind="delay", delay=5, count=1)

    async def while_the_pool_is_busy() -> func.HttpResponse:
        app_settings.cache_clear()
        session = client_for(app_settings()).http_client.session
        try:
            async with asyncio.timeout(10):
                holder = asyncio.ensure_future(session.get(f"{app_env.base_url}/2010-04-01/hold"))
                await asyncio.sleep(0.3)  # the holder has the only connection
                marked = {**CASES[function], MARKED_FIELD[function]: "pool-marker"}
                response = await function_main(function)(
                    request("POST", f"{APP_URL}/{function}", json_body=marked))
                (await holder).release()
                return response
        finally:
            await close_clients()

    response = asyncio.run(while_the_pool_is_busy())
    assert response.status_code == 504
    document = problem(response)
    assert document["type"].endswith(":twilio-timeout")
    assert MAY_HAVE_BEEN_CREATED not in document["detail"]
    assert "never sent" in document["detail"]
    assert "pool-marker" not in repr(app_env.calls + app_env.messages)  # Twilio never got it


def test_a_refused_connection_says_nothing_was_sent(app_env, function, monkeypatch):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    monkeypatch.setenv("TWILIO_API_BASE_URL", f"http://127.0.0.1:{port}")
    response = call(function)
    assert response.status_code == 502
    document = problem(response)
    assert document["type"].endswith(":twilio-unavailable")
    assert MAY_HAVE_BEEN_CREATED not in document["detail"] and "never sent" in document["detail"]
