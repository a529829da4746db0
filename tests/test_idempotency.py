"""Idempotency-Key on make_call and send_sms, on real Table Storage (Azurite).

In process, the functions run against the loopback Twilio sandbox and the
session's Azurite; end to end, two host processes share one Azurite and one
sandbox, which counts what was really sent.
"""

from __future__ import annotations

import concurrent.futures
import json
import secrets
from datetime import UTC, datetime, timedelta

import pytest
from harness import ACCOUNT_SID, APP_URL, AUTH_TOKEN, created, invoke, problem, request
from live import LiveApp
from storage import run, shared_azurite, start_azurite
from test_delivery_e2e import http

from shared.idempotency import HEADER, REPLAYED, _fingerprint, _reserve
from shared.identity import ANONYMOUS
from shared.request_body import Payload
from shared.settings import load_settings
from shared.store import store_for

TO = "+14155552671"
SMS = {"to": TO, "body": "Your table is ready"}
PROBLEM = "urn:twilio-functions:problem:"


@pytest.fixture
def stored(app_env, monkeypatch):
    """The app on the sandbox, with the session's Azurite and no rate limit in the way."""
    monkeypatch.setenv("STATE_STORAGE", shared_azurite().connection_string)
    for name in ("SMS_PER_CALLER", "CALLS_PER_CALLER", "PER_DESTINATION", "PER_COUNTRY",
                 "PER_ACCOUNT"):
        monkeypatch.setenv(f"RATE_LIMIT_{name}", "0")
    return app_env


def post(function: str, body: dict, key: str | None = None, **headers: str):
    if key is not None:
        headers[HEADER] = key
    return invoke(function, request("POST", f"{APP_URL}/{function}", json_body=body,
                                    headers=headers))


def new_key() -> str:
    return secrets.token_hex(16)


def sent_to(sandbox, body: str = SMS["body"]) -> list[dict]:
    return [m for m in sandbox.messages if m["body"] == body]


# --- replays ---------------------------------------------------------------------------


@pytest.mark.parametrize("function, body", [("send_sms", SMS), ("make_call", {"to": TO})])
def test_a_retry_gets_the_stored_answer_and_nothing_is_sent_again(stored, function, body):
    key = new_key()
    first = post(function, body, key)
    again = post(function, body, key)
    assert first.status_code == again.status_code == 201
    assert again.get_body() == first.get_body()
    assert again.headers[REPLAYED] == "true" and REPLAYED not in first.headers
    records = stored.messages if function == "send_sms" else stored.calls
    assert [r["sid"] for r in records] == [created(first)["sid"]]


def test_without_a_key_every_request_sends(stored):
    post("send_sms", SMS)
    post("send_sms", SMS)
    assert len(sent_to(stored)) == 2


def test_another_request_under_the_same_key_is_422(stored):
    key = new_key()
    created(post("send_sms", SMS, key))
    for other_function, other in (("send_sms", {**SMS, "body": "Another text"}),
                                  ("make_call", {"to": TO})):
        refused = post(other_function, other, key)
        assert refused.status_code == 422
        assert problem(refused)["type"] == PROBLEM + "idempotency-key-reused"
    assert len(stored.messages) == 1 and stored.calls == []


def test_keys_belong_to_their_caller(stored, monkeypatch):
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "True")
    key = new_key()
    alice = created(post("send_sms", SMS, key, **{"X-MS-CLIENT-PRINCIPAL-ID": "alice",
                                                   "X-MS-CLIENT-PRINCIPAL-IDP": "aad"}))
    bob = post("send_sms", SMS, key, **{"X-MS-CLIENT-PRINCIPAL-ID": "bob",
                                         "X-MS-CLIENT-PRINCIPAL-IDP": "aad"})
    assert created(bob)["sid"] != alice["sid"] and REPLAYED not in bob.headers


@pytest.mark.parametrize("raw", ["", " ", "x" * 256, "caf\u00e9", "tab\there"])
def test_a_malformed_key_is_400_and_nothing_is_sent(stored, raw):
    refused = post("send_sms", SMS, raw)
    assert refused.status_code == 400
    assert HEADER in problem(refused)["detail"]
    assert stored.messages == []


def test_a_structured_field_string_is_the_same_key(stored):
    key = new_key()
    first = created(post("send_sms", SMS, f'"{key}"'))
    assert created(post("send_sms", SMS, key))["sid"] == first["sid"]


# --- what is stored, and what is not ------------------------------------------------------


def test_a_key_refused_by_our_own_checks_is_accepted_once_fixed(stored, monkeypatch):
    key = new_key()
    assert post("send_sms", {"to": "+1415"}, key).status_code == 400
    assert post("send_sms", {**SMS, "to": "+19005551234"}, key).status_code == 403
    monkeypatch.setenv("RATE_LIMIT_PER_DESTINATION", "1")
    post("send_sms", {**SMS, "body": "fills the day"})  # the one send this number gets today
    limited = post("send_sms", SMS, key)
    assert limited.status_code == 429 and problem(limited)["type"] == PROBLEM + "rate-limited"
    monkeypatch.setenv("RATE_LIMIT_PER_DESTINATION", "0")
    fixed = post("send_sms", SMS, key)
    assert fixed.status_code == 201 and REPLAYED not in fixed.headers
    assert post("send_sms", SMS, key).headers[REPLAYED] == "true"
    assert len(sent_to(stored)) == 1


def test_a_twilio_timeout_is_replayed_and_never_sent_twice(stored):
    """The 504 "may have been sent": a retry under the key gets it again, Twilio nothing."""
    stored.fault(kind="delay", delay=3.5, count=1)  # TWILIO_TIMEOUT_SECONDS is 2
    key = new_key()
    first = post("send_sms", SMS, key)
    assert first.status_code == 504 and problem(first)["type"] == PROBLEM + "twilio-timeout"
    again = post("send_sms", SMS, key)
    assert again.status_code == 504 and again.headers[REPLAYED] == "true"
    assert again.get_body() == first.get_body()
    # The sandbox still answers the request the app gave up on (and records its message).
    stored.run(stored.sandbox.wait_idle(timeout=30))
    assert len(sent_to(stored)) == 1


def test_a_twilio_429_created_nothing_so_the_key_may_send(stored):
    stored.fault(kind="rate_limit", count=1)
    key = new_key()
    assert post("send_sms", SMS, key).status_code == 429
    retried = post("send_sms", SMS, key)
    assert retried.status_code == 201 and REPLAYED not in retried.headers
    assert len(sent_to(stored)) == 1


# --- a first request still running, or gone ------------------------------------------------


def reserve_at(key: str, started: datetime, body: dict = SMS) -> None:
    """The reservation a first request made at ``started`` (on another instance)."""
    settings = load_settings({"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                              "STATE_STORAGE": shared_azurite().connection_string})
    fingerprint = _fingerprint("send_sms", Payload({k: [v] for k, v in body.items()}))

    async def reserve():
        await _reserve(store_for(settings), settings, ANONYMOUS, key, "send_sms", fingerprint,
                       started)
    run(reserve())


def test_a_key_still_in_progress_is_409_retry_after_1(stored):
    key = new_key()
    reserve_at(key, datetime.now(UTC))
    busy = post("send_sms", SMS, key)
    assert busy.status_code == 409 and busy.headers["Retry-After"] == "1"
    assert problem(busy)["type"] == PROBLEM + "idempotency-key-in-progress"
    assert stored.messages == []


def test_an_abandoned_reservation_stays_409_until_it_expires_then_sends(stored):
    key = new_key()
    reserve_at(key, datetime.now(UTC) - timedelta(hours=1))
    abandoned = post("send_sms", SMS, key)
    assert abandoned.status_code == 409
    assert "never finished" in problem(abandoned)["detail"]
    assert 22 * 3600 < int(abandoned.headers["Retry-After"]) <= 23 * 3600
    assert stored.messages == []

    expired = new_key()
    reserve_at(expired, datetime.now(UTC) - timedelta(hours=25))
    assert post("send_sms", SMS, expired).status_code == 201


# --- the store failing ---------------------------------------------------------------------


def test_a_store_failure_during_reservation_is_503_and_nothing_is_sent(app_env, monkeypatch):
    azurite = start_azurite()
    monkeypatch.setenv("STATE_STORAGE", azurite.connection_string)
    monkeypatch.setenv("RATE_LIMIT_STORE_FAILURE", "allow")  # only the key is in the way
    azurite.stop()
    refused = post("send_sms", SMS, new_key())
    assert refused.status_code == 503
    assert problem(refused)["type"] == PROBLEM + "store-unavailable"
    assert refused.headers["Retry-After"].isdigit()
    assert app_env.messages == []


def test_a_store_failure_while_counting_is_503_and_nothing_is_sent(app_env, monkeypatch):
    azurite = start_azurite()
    monkeypatch.setenv("STATE_STORAGE", azurite.connection_string)
    azurite.stop()
    refused = post("send_sms", SMS)
    assert refused.status_code == 503 and "rate-limit" in problem(refused)["detail"]
    assert app_env.messages == []


def test_a_key_without_any_store_is_refused_as_misconfigured(app_env):
    refused = post("send_sms", SMS, new_key())
    assert refused.status_code == 500 and problem(refused)["setting"] == "STATE_STORAGE"
    assert app_env.messages == []


# --- end to end: 20 at once over two host processes ----------------------------------------


def test_twenty_concurrent_retries_over_two_hosts_send_exactly_once():
    env = {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN}
    first = LiveApp(env)
    second = LiveApp({**env, "TWILIO_API_BASE_URL": first.sandbox_url,
                      "TWILIO_FROM_NUMBER": "+15005550006"}, args=())
    try:
        first.sandbox("POST", "/_sandbox/faults", {"kind": "delay", "delay": 0.3})
        key, body = new_key(), {**SMS, "body": f"once {secrets.token_hex(4)}"}

        def one(n: int):
            app = (first, second)[n % 2]
            return http("POST", f"{app.base_url}/api/send_sms", body, {HEADER: key})

        with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
            answers = list(pool.map(one, range(20)))
        codes = [code for code, _, _ in answers]
        fresh = [a for code, a, h in answers if code == 201 and h.get(REPLAYED) is None]
        replayed = [a for code, a, h in answers if code == 201 and h.get(REPLAYED) == "true"]
        assert len(fresh) == 1, codes
        assert len(fresh) + len(replayed) + codes.count(409) == 20, codes
        assert {a["sid"] for a in fresh + replayed} == {fresh[0]["sid"]}
        messages = [m for m in first.state()["messages"] if m["body"] == body["body"]]
        assert [m["sid"] for m in messages] == [fresh[0]["sid"]]
        # Once the first is done, every retry is its replay.
        code, again, headers = http("POST", f"{second.base_url}/api/send_sms", body, {HEADER: key})
        assert (code, again["sid"], headers[REPLAYED]) == (201, fresh[0]["sid"], "true")
        logs = first.log() + second.log()
        assert "status=500" not in logs and "Traceback" not in logs
        assert json.dumps(body["body"]) not in logs
    finally:
        assert first.stop() == 0
        assert second.stop() == 0
