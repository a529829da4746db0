"""Delivery status end to end: `make run`'s pieces (host, sandbox, Azurite) over HTTP.

The mobile app sends through the host, the sandbox reports each step to
``status_callback`` signed as Twilio signs, Azurite keeps it, and ``status``
answers the owner. Callbacks sent by the tests themselves are signed the
same way (``signed_request``, the sandbox's own signing).
"""

from __future__ import annotations

import concurrent.futures
import json
import secrets
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from harness import ACCOUNT_SID, AUTH_TOKEN
from live import ROOT, LiveApp
from storage import start_azurite

from devhost.easy_auth import PROVIDER, bearer
from shared.identity import ANONYMOUS, Caller
from shared.threads import owner_key
from twilio_sandbox.callbacks import signed_request
from twilio_sandbox.magic import DELIVERY_OUTCOMES

ENV = {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN}
TO = "+14155552671"
ALICE = {"Authorization": bearer("alice")}
#: The owner keys the app's StatusCallback URLs name (``?owner=``) for ALICE's sends and
#: for those of a caller without a sign-in.
ALICE_KEY = owner_key(Caller("alice", PROVIDER).owner)
ANONYMOUS_KEY = owner_key(ANONYMOUS.owner)
BOB = {"Authorization": bearer("bob")}


def http(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None,
         form: dict[str, str] | None = None) -> tuple[int, Any, Any]:
    data, all_headers = None, dict(headers or {})
    if body is not None:
        data = json.dumps(body).encode()
        all_headers["Content-Type"] = "application/json"
    elif form is not None:
        data = urlencode(form).encode()
        all_headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
    req = urllib.request.Request(url, data=data, method=method, headers=all_headers)
    try:
        with urllib.request.urlopen(req, timeout=15) as response:
            status, raw, got = response.status, response.read(), response.headers
    except urllib.error.HTTPError as error:
        status, raw, got = error.code, error.read(), error.headers
    return status, json.loads(raw) if raw else None, got


def send(app: LiveApp, function: str, to: str = TO, headers: dict[str, str] | None = None,
         ) -> str:
    body = {"to": to, "body": "Your table is ready"} if function == "send_sms" else {"to": to}
    status, answer, _ = http("POST", f"{app.base_url}/api/{function}", body, headers)
    assert status == 201, answer
    return answer["sid"]


def status_of(app: LiveApp, sid: str, headers: dict[str, str] | None = None,
              ) -> tuple[int, Any, Any]:
    return http("GET", f"{app.base_url}/api/status/{sid}", headers=headers)


def wait_for_status(app: LiveApp, sid: str, final: str, headers: dict[str, str] | None = None,
                    timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        code, view, _ = status_of(app, sid, headers)
        if code == 200 and view["status"] == final:
            return view
        assert time.monotonic() < deadline, f"{sid} never reached {final}: {code} {view}"
        time.sleep(0.05)


def callback(app: LiveApp, params: dict[str, str], *, token: str | None = None,
             auth_token: str = AUTH_TOKEN, tamper: dict[str, str] | None = None,
             signature: str | None = None, owner: str = ANONYMOUS_KEY,
             signed_owner: str | None = None) -> tuple[int, Any, Any]:
    """POST a status callback to ``app``'s StatusCallback URL for ``owner``'s sends,
    signed like Twilio (for ``signed_owner``'s URL, if given; then changed, if asked)."""
    url = f"{app.base_url}/api/status_callback?owner={owner}"
    signed = f"{app.base_url}/api/status_callback?owner={signed_owner or owner}"
    _, form, headers = signed_request(signed, "POST", params, auth_token)
    headers["I-Twilio-Idempotency-Token"] = token or secrets.token_hex(16)
    if signature is not None:
        headers["X-Twilio-Signature"] = signature
    if signature == "":
        del headers["X-Twilio-Signature"]
    return http("POST", url, headers=headers, form={**(form or {}), **(tamper or {})})


def message_report(sid: str, status: str, **extra: str) -> dict[str, str]:
    return {"AccountSid": ACCOUNT_SID, "ApiVersion": "2010-04-01", "MessageSid": sid,
            "SmsSid": sid, "MessageStatus": status, "SmsStatus": status,
            "From": "+15005550006", "To": TO, **extra}


def call_report(sid: str, status: str, sequence: int, **extra: str) -> dict[str, str]:
    return {"AccountSid": ACCOUNT_SID, "ApiVersion": "2010-04-01", "CallSid": sid,
            "CallStatus": status, "SequenceNumber": str(sequence), "From": "+15005550006",
            "To": TO, "Direction": "outbound-api", "CallbackSource": "call-progress-events",
            "Timestamp": time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime()),
            **extra}


def statuses(view: dict[str, Any]) -> list[str]:
    return [event["status"] for event in view["history"]]


@pytest.fixture(scope="module")
def app() -> Iterator[LiveApp]:
    """`make run` with App Service Authentication emulated (``--auth``)."""
    running = LiveApp(ENV, args=("--sandbox", "--auth"))
    yield running
    assert running.stop() == 0
    assert "status=500" not in running.log()


@pytest.fixture(scope="module")
def plain() -> Iterator[LiveApp]:
    """`make run` as it starts by default: no authentication in front."""
    running = LiveApp(ENV)
    yield running
    assert running.stop() == 0


# --- the happy paths ---------------------------------------------------------------


def test_an_sms_is_delivered_and_its_owner_sees_each_step(app):
    sid = send(app, "send_sms", headers=ALICE)
    view = wait_for_status(app, sid, "delivered", ALICE, timeout=2.0)  # the 2 s
    assert statuses(view) == ["queued", "sent", "delivered"]
    assert (view["sid"], view["kind"], view["to"]) == (sid, "sms", TO)
    assert view["error_code"] is None and view["duration"] is None
    sent = [c for c in app.wait_for(lambda s: len([c for c in s["status_callbacks"]
                                                   if c["sid"] == sid and c["answered"]]) == 2)
            ["status_callbacks"] if c["sid"] == sid]
    assert [(c["status"], c["answered"], c["attempt"]) for c in sent] == [
        ("sent", 204, 1), ("delivered", 204, 1)]
    assert len({c["token"] for c in sent}) == 2
    assert sent[0]["url"] == f"{app.base_url}/api/status_callback?owner={ALICE_KEY}"


def test_a_call_completes_with_its_duration(app):
    sid = send(app, "make_call", headers=ALICE)
    view = wait_for_status(app, sid, "completed", ALICE)
    assert statuses(view) == ["queued", "initiated", "ringing", "in-progress", "completed"]
    assert view["kind"] == "call" and view["duration"] >= 1
    reports = [c["params"] for c in app.state()["status_callbacks"] if c["sid"] == sid]
    assert [r["SequenceNumber"] for r in reports] == ["0", "1", "2", "3"]
    assert reports[-1]["CallDuration"] == str(view["duration"])


@pytest.mark.parametrize("outcome", DELIVERY_OUTCOMES, ids=lambda o: f"{o.resource}-{o.status}")
def test_each_failing_magic_number_ends_in_its_status_and_code(app, outcome):
    function = "send_sms" if outcome.resource == "message" else "make_call"
    sid = send(app, function, to=outcome.number, headers=ALICE)
    view = wait_for_status(app, sid, outcome.status, ALICE)
    assert view["error_code"] == outcome.code
    if outcome.code:
        assert view["more_info"] == f"https://www.twilio.com/docs/errors/{outcome.code}"
    if outcome.resource == "call":
        assert "in-progress" not in statuses(view) and view["duration"] == 0


# --- who may see what --------------------------------------------------------------


def test_another_user_cannot_read_a_sid_nor_tell_it_exists(app):
    sid = send(app, "send_sms", headers=ALICE)
    assert status_of(app, sid, ALICE)[0] == 200
    unknown = "SM" + secrets.token_hex(16)
    answers = [status_of(app, sid, BOB), status_of(app, sid),
               status_of(app, sid, {"X-MS-CLIENT-PRINCIPAL-ID": "alice",
                                    "X-MS-CLIENT-PRINCIPAL-IDP": "dev"}),
               status_of(app, unknown, BOB)]
    for code, problem, headers in answers:
        assert code == 404 and problem["type"].endswith(":not-found")
        assert headers["Content-Type"] == "application/problem+json"
    assert {a[1]["title"] for a in answers} == {"Not Found"}
    assert status_of(app, sid, {"Authorization": "Bearer not-a-dev-token"})[0] == 401


def test_principal_headers_from_a_client_change_nothing_without_easy_auth(plain):
    sid = send(plain, "send_sms", headers={"X-MS-CLIENT-PRINCIPAL-ID": "alice"})
    for headers in ({}, {"X-MS-CLIENT-PRINCIPAL-ID": "bob"},
                    {"X-MS-CLIENT-PRINCIPAL-ID": "alice", "Authorization": "Bearer dev:alice"}):
        code, view, got = status_of(plain, sid, headers)
        assert code == 200 and view["sid"] == sid  # everyone is the one anonymous owner
        assert got["Cache-Control"] == "no-store"


# --- signatures --------------------------------------------------------------------


def test_forged_callbacks_are_refused_and_change_nothing(app):
    sid = send(app, "send_sms", headers=ALICE)
    before = wait_for_status(app, sid, "delivered", ALICE)
    forged = message_report(sid, "failed", ErrorCode="30007")
    assert callback(app, message_report(sid, "read"), owner=ALICE_KEY)[0] == 204  # genuine
    before = wait_for_status(app, sid, "read", ALICE)
    other_account = {**forged, "AccountSid": "AC" + "c3" * 16}
    answers = {
        "unsigned": callback(app, forged, signature=""),
        "wrong signature": callback(app, forged, signature="bm90IGEgc2lnbmF0dXJl"),
        "other account's token": callback(app, other_account, auth_token="other-token"),
        "other account, our token": callback(app, other_account),
        "no account": callback(app, {k: v for k, v in forged.items() if k != "AccountSid"}),
        "tampered": callback(app, message_report(sid, "sent"),
                             tamper={"MessageStatus": "failed", "SmsStatus": "failed"}),
        "added field": callback(app, message_report(sid, "sent"), tamper={"ErrorCode": "1"}),
        "another owner's URL": callback(app, forged, owner=ALICE_KEY,
                                        signed_owner=ANONYMOUS_KEY),
    }
    refusals = {"other account, our token": "webhook-refused", "no account": "webhook-refused"}
    for case, (code, problem, _) in answers.items():
        assert (case, code, problem["type"]) == (
            case, 403, "urn:twilio-functions:problem:" + refusals.get(case, "invalid-signature"))
    after = wait_for_status(app, sid, "read", ALICE)
    assert after == before


def test_an_unknown_sid_is_acknowledged_and_not_stored(app):
    sid = "SM" + secrets.token_hex(16)
    code, body, _ = callback(app, message_report(sid, "delivered"))
    assert (code, body) == (204, None)
    assert status_of(app, sid, ALICE)[0] == 404
    assert f"sid={sid} outcome=unknown" in app.log()


# --- Twilio misbehaving ---------------------------------------------------------


@pytest.mark.parametrize("fault", [
    {"kind": "duplicate"},
    {"kind": "duplicate", "new_token": True},
    {"kind": "reorder"},
    {"kind": "late", "delay": 0.4},
], ids=lambda f: f["kind"] + ("-new-token" if f.get("new_token") else ""))
@pytest.mark.parametrize("function", ["send_sms", "make_call"])
def test_callbacks_twice_out_of_order_or_late_end_right(app, fault, function):
    app.sandbox("POST", "/_sandbox/callback_faults", {**fault, "count": 1})
    sid = send(app, function, headers=ALICE)
    final = "delivered" if function == "send_sms" else "completed"
    expected = (["queued", "sent", "delivered"] if function == "send_sms" else
                ["queued", "initiated", "ringing", "in-progress", "completed"])
    sent_count = (len(expected) - 1) * (2 if fault["kind"] == "duplicate" else 1)
    state = app.wait_for(lambda s: len([c for c in s["status_callbacks"] if c["sid"] == sid
                                        and c["answered"]]) >= sent_count, timeout=15)
    view = wait_for_status(app, sid, final, ALICE)
    reports = [c for c in state["status_callbacks"] if c["sid"] == sid]
    assert all(c["answered"] == 204 for c in reports)
    if function == "make_call":
        assert statuses(view) == expected  # kept in SequenceNumber order
    else:
        assert sorted(statuses(view)) == sorted(expected)
    if fault["kind"] == "reorder":
        assert next(c["status"] for c in reports) == final  # the final status came first
    assert f"sid={sid} outcome=duplicate" in app.log() or fault["kind"] != "duplicate"


# --- two instances, one store -------------------------------------------------------


def test_two_hosts_sharing_one_store_receive_one_sids_callbacks_interleaved():
    """Duplicated, out of order and spread over two instances: nothing lost, nothing twice."""
    first, second = LiveApp(ENV), LiveApp(ENV)
    try:
        first.sandbox("POST", "/_sandbox/callback_faults", {"kind": "drop"})
        call_sid = send(first, "make_call")
        message_sid = send(first, "send_sms")
        steps = ["initiated", "ringing", "in-progress", "completed"]
        reports = [(call_report(call_sid, status, n, **({"CallDuration": "17"}
                                                        if status == "completed" else {})),
                    f"call-{n}") for n, status in enumerate(steps)]
        reports += [(message_report(message_sid, status), f"message-{status}")
                    for status in ("sent", "delivered")]
        jobs = []
        for params, token in reversed(reports):  # newest first
            for app in (second, first, second):  # the same report to both, twice to one
                jobs.append((app, params, token))
            jobs.append((first, params, secrets.token_hex(8)))  # a repeat with its own token
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(lambda job: callback(job[0], job[1], token=job[2]), jobs))
        assert {code for code, _, _ in answers} == {204}
        for app in (first, second):
            call = status_of(app, call_sid)[1]
            assert (call["status"], call["duration"]) == ("completed", 17)
            assert statuses(call) == ["queued", *steps]
            message = status_of(app, message_sid)[1]
            assert message["status"] == "delivered"
            assert sorted(statuses(message)) == ["delivered", "queued", "sent"]
        logs = first.log() + second.log()
        assert logs.count(f"sid={call_sid} outcome=recorded") == len(steps)
        assert logs.count(f"sid={message_sid} outcome=recorded") == 2
        assert "status=500" not in logs
    finally:
        assert first.stop() == 0
        assert second.stop() == 0


# --- the store going away -----------------------------------------------------------


def test_store_down_sends_still_succeed_and_status_says_503():
    azurite = start_azurite()
    # The sends must go out while the store is down: the rate limits, which fail
    # closed by default (tests/test_limits.py), are told to let them through uncounted.
    app = LiveApp({**ENV, "STATE_STORAGE": azurite.connection_string,
                   "RATE_LIMIT_STORE_FAILURE": "allow"})
    try:
        before = send(app, "send_sms")
        wait_for_status(app, before, "delivered")
        azurite.stop()

        during = send(app, "send_sms")  # 201: the message went out
        code, problem, headers = status_of(app, before)
        assert (code, problem["type"]) == (503, "urn:twilio-functions:problem:store-unavailable")
        assert headers["Retry-After"].isdigit()
        state = app.wait_for(lambda s: len([c for c in s["status_callbacks"]
                                            if c["sid"] == during and c["answered"]]) >= 2,
                             timeout=20)
        first_report = [c for c in state["status_callbacks"] if c["sid"] == during][:2]
        assert [(c["attempt"], c["answered"]) for c in first_report] == [(1, 503), (2, 503)]
        assert first_report[0]["token"] == first_report[1]["token"]  # a retry, same token
        log = app.log()
        assert f"store=unavailable sid={during}" in log  # the SID is never lost
        assert f"function=send_sms status=201 sid={during}" in log
        assert "status=500" not in log and "Traceback" not in log
    finally:
        assert app.stop() == 0
        azurite.stop()


# --- make run's own Azurite -----------------------------------------------------------


def test_make_run_starts_azurite_and_a_restart_keeps_the_history(tmp_path):
    """No storage configured: the launcher starts Azurite, its data in the app's .azurite/."""
    for name in ("shared", "send_sms", "make_call", "twiml", "status", "status_callback",
                 "host.json"):
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy
        copy(ROOT / name, tmp_path / name)
    unset = {"STATE_STORAGE": "", "AzureWebJobsStorage": ""}
    app = LiveApp({**ENV, **unset}, app_dir=tmp_path)
    try:
        sid = send(app, "send_sms")
        before = wait_for_status(app, sid, "delivered")
    finally:
        assert app.stop() == 0
    assert (tmp_path / ".azurite").is_dir()
    again = LiveApp({**ENV, **unset}, app_dir=tmp_path)
    try:
        assert status_of(again, sid)[1] == before
    finally:
        assert again.stop() == 0
