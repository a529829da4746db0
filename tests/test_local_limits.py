"""Local work without lockouts: the 429 says which limit, when it resets and (locally
only) how to reset it; ``python -m devhost --reset-limits`` and the host's
``POST /_devhost/reset-limits`` clear the counters and nothing else; the control
answers this run's token, from this machine, not through a tunnel; the sandbox's
requests to the app count as a caller of their own.

Each test that clears counters has an Azurite of its own: clearing the session's
would touch other tests' counts.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from harness import ACCOUNT_SID, AUTH_TOKEN
from live import ROOT, LiveApp
from storage import start_azurite

from devhost import azurite, children
from devhost.azurite import Azurite
from devhost.host_routes import CONTROL_HEADER, run_control
from localhttp.problem import Refusal
from shared import conversations, idempotency, limits
from shared import store as store_module
from shared.problems import Problem
from shared.settings import DECLARATIONS, load_settings
from shared.store import Row
from twilio_sandbox import source_address

NOON = datetime(2026, 3, 14, 12, 0, 5, tzinfo=UTC)
BASE = {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN}
LOCAL_ADVICE = "python -m devhost --reset-limits"
JSON_HEADERS = {"Content-Type": "application/json"}


def refusal(connection: str, environment: str | None, who: str, to: str) -> Problem:
    env = {**BASE, "STATE_STORAGE": connection, "RATE_LIMIT_SMS_PER_CALLER": "1",
           "RATE_LIMIT_PER_DESTINATION": "0", "RATE_LIMIT_PER_COUNTRY": "0",
           "RATE_LIMIT_PER_ACCOUNT": "0"}
    if environment is not None:
        env["AZURE_FUNCTIONS_ENVIRONMENT"] = environment
    settings = load_settings(env)

    async def twice() -> Problem:
        try:
            for _ in range(2):
                await limits.admit(settings, "sms", who, to, now=NOON)
        except Problem as problem:
            return problem
        finally:
            await store_module.close_stores()
        raise AssertionError("the second request was admitted")

    return asyncio.run(twice())


@pytest.fixture(scope="module")
def own_azurite():
    running = start_azurite()
    yield running
    running.stop()


@pytest.mark.parametrize("environment", ["Development", "development", None, "Production"])
def test_a_429_says_which_limit_and_when_and_only_locally_how_to_reset(own_azurite,
                                                                      environment):
    who, to = f"ip:198.51.100.{len(environment or '')}", "+14155552671"
    problem = refusal(own_azurite.connection_string, environment, f"{who}-{environment}", to)
    assert problem.status == 429
    detail = problem.detail
    assert detail.startswith("the sms-per-caller limit is reached: 1 SMS by one caller per hour")
    assert "resets in 3595 s, at 2026-03-14T13:00:00Z" in detail
    if (environment or "").lower() == "development":
        assert LOCAL_ADVICE in detail and '"Reset limits" in the sandbox console' in detail
    else:  # Azure: nothing about a local host
        assert "devhost" not in detail and "Reset" not in detail and "ocally" not in detail
    assert who not in detail and to not in detail and "198.51" not in detail


def test_reset_all_clears_counters_and_nothing_else(own_azurite):
    settings = load_settings({**BASE, "STATE_STORAGE": own_azurite.connection_string,
                              "RATE_LIMIT_SMS_PER_CALLER": "1"})
    kept = {idempotency.TABLE: Row("key-owner", "key-1", {"Body": "x"}),
            conversations.CONVERSATIONS: Row("owner", "+14155550100", {"LastAt": NOON})}

    async def scenario() -> tuple[int, int, list[int], int]:
        store = store_module.connect(settings.state_connection)
        try:
            for table, row in kept.items():
                await store.upsert(table, row)
            for n in range(3):  # three callers, each counted on each limit
                await limits.admit(settings, "sms", f"ip:reset-{n}", f"+1415555010{n}", now=NOON)
            before = len(await store.rows(limits.TABLE))
            cleared = await limits.reset_all(store)
            after = [len(await store.rows(table)) for table in (limits.TABLE, *kept)]
            again = await limits.reset_all(store)
            return before, cleared, after, again
        finally:
            await store.close()

    before, cleared, after, again = asyncio.run(scenario())
    assert before >= 3 and cleared == before
    assert after == [0, 1, 1]  # counters gone; an idempotency key and a thread kept
    assert again == 0


# --- python -m devhost --reset-limits ---------------------------------------------------


def reset_command(app_dir: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = {name: value for name, value in os.environ.items()
             if name not in {d.name for d in DECLARATIONS}}
    return children.run([sys.executable, "-m", "devhost", "--app-dir", str(app_dir),
                         "--reset-limits"], env={**clean, **(env or {})}, cwd=ROOT,
                        capture_output=True, text=True, timeout=120, check=False)


def count_some(connection: str, callers: int) -> None:
    """``callers`` callers send one SMS each to one number: ``callers`` + 1 counters (theirs
    and the number's; the country's and the account's are off: their shards are random)."""
    settings = load_settings({**BASE, "STATE_STORAGE": connection, "RATE_LIMIT_PER_COUNTRY": "0",
                              "RATE_LIMIT_PER_ACCOUNT": "0"})

    async def send() -> None:
        try:
            for n in range(callers):
                await limits.admit(settings, "sms", f"ip:cli-{n}", "+14155550199", now=NOON)
        finally:
            await store_module.close_stores()

    asyncio.run(send())


def rows(connection: str, table: str) -> int:
    settings = load_settings({**BASE, "STATE_STORAGE": connection})

    async def count() -> int:
        store = store_module.connect(settings.state_connection)
        try:
            return len(await store.rows(table))
        finally:
            await store.close()

    return asyncio.run(count())


def test_the_command_starts_azurite_over_the_folder_when_none_runs(tmp_path):
    data = tmp_path / ".azurite"
    first = Azurite.start(location=data)
    try:
        count_some(first.connection_string, 2)
        asyncio.run(_keep_an_idempotency_key(first.connection_string))
    finally:
        first.stop()
    assert azurite.serving(data) is None and not (data / azurite.SERVING_FILE).exists()

    done = reset_command(tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ("Cleared 3 rate-limit counters in .azurite/; messages and "
                                   "idempotency keys are kept.")
    assert azurite.serving(data) is None  # the one it started is stopped

    again = Azurite.start(location=data)
    try:
        assert rows(again.connection_string, limits.TABLE) == 0
        assert rows(again.connection_string, idempotency.TABLE) == 1
    finally:
        again.stop()


async def _keep_an_idempotency_key(connection: str) -> None:
    settings = load_settings({**BASE, "STATE_STORAGE": connection})
    store = store_module.connect(settings.state_connection)
    try:
        await store.upsert(idempotency.TABLE, Row("key-owner", "key-1", {"Body": "x"}))
    finally:
        await store.close()


def test_the_command_reaches_the_azurite_that_serves_the_folder(tmp_path):
    running = Azurite.start(location=tmp_path / ".azurite")
    try:
        count_some(running.connection_string, 1)
        done = reset_command(tmp_path)
        assert done.returncode == 0, done.stderr
        assert "Cleared 2 rate-limit counters in .azurite/" in done.stdout
        assert rows(running.connection_string, limits.TABLE) == 0  # seen by the running one
        assert running.running
    finally:
        running.stop()


def test_the_command_without_a_folder_has_nothing_to_clear(tmp_path):
    done = reset_command(tmp_path)
    assert (done.returncode, done.stdout.strip()) == (
        0, "No rate-limit counters to clear: .azurite/ does not exist.")
    assert not (tmp_path / ".azurite").exists()


@pytest.mark.parametrize("setting", [
    {"STATE_STORAGE__tableServiceUri": "https://contoso.table.core.windows.net"},
    {"AzureWebJobsStorage": "DefaultEndpointsProtocol=https;AccountName=contoso;"
                            "AccountKey=a2V5;EndpointSuffix=core.windows.net"},
])
def test_the_command_never_clears_a_storage_account(tmp_path, setting):
    (tmp_path / ".azurite").mkdir()
    (tmp_path / "local.settings.json").write_text(json.dumps({"Values": setting}))
    done = reset_command(tmp_path)
    assert done.returncode == 1
    assert "Nothing was cleared" in done.stderr and "storage account" in done.stderr
    assert "a2V5" not in done.stderr + done.stdout


# --- end to end: python -m devhost with its sandbox ----------------------------------------


def http(method: str, url: str, body: Any = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any], dict[str, str]]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as answer:
            return answer.status, json.loads(answer.read() or b"{}"), dict(answer.headers)
    except urllib.error.HTTPError as answer:
        text = answer.read()
        return answer.code, json.loads(text) if text else {}, dict(answer.headers)


TUNNEL = "tunnel.example"


@pytest.fixture(scope="module")
def limited_app():
    """The launcher with its sandbox, 2 SMS per caller, on an Azurite of its own, exposed
    through a tunnel (``--allow-host``) as docs/sandbox.md suggests; each test starts from
    no counts."""
    store = start_azurite()
    app = LiveApp({"STATE_STORAGE": store.connection_string},
                  args=("--sandbox", "--allow-host", TUNNEL),
                  limits={"RATE_LIMIT_SMS_PER_CALLER": "2"})
    try:
        yield app
    finally:
        assert app.stop() == 0
        store.stop()


def control_headers(app: LiveApp) -> dict[str, str]:
    """What the printed ``curl`` for the control sends: JSON, and this run's token."""
    found = [m for line in app.stdout_lines
             if (m := re.search(rf"-H '{CONTROL_HEADER}: ([A-Za-z0-9_-]+)'", line))]
    assert len(found) == 1, app.stdout_lines
    return {**JSON_HEADERS, CONTROL_HEADER: found[0][1]}


def reset(app: LiveApp) -> dict[str, Any]:
    status, answer, _ = http("POST", f"{app.base_url}/_devhost/reset-limits", {},
                             control_headers(app))
    assert status == 200, answer
    return answer


def curl_sms(app: LiveApp, to: str) -> tuple[int, dict[str, Any], dict[str, str]]:
    return http("POST", f"{app.base_url}/api/send_sms", {"to": to, "body": "lockout"},
                JSON_HEADERS)


def console_sms(app: LiveApp, to: str) -> int:
    record = app.sandbox("POST", "/_sandbox/app/send_sms", {"to": to, "body": "console"})
    return record["answer"]["status"]


def within_one_hour[T](app: LiveApp, sends: Callable[[], T]) -> T:
    """``sends()`` from no counts, once more if a UTC hour began meanwhile: the
    per-caller window is the hour, so a new one would have forgotten the first sends."""
    for _ in range(2):
        reset(app)
        hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        result = sends()
        if datetime.now(UTC).replace(minute=0, second=0, microsecond=0) == hour:
            return result
    raise AssertionError("two UTC hours began during two runs of a few requests")


def test_a_locked_out_developer_reads_why_and_resets(limited_app):
    app = limited_app
    reset_url = f"{app.base_url}/_devhost/reset-limits"
    assert any(reset_url in line and LOCAL_ADVICE in line for line in app.stdout_lines)

    def lock_out() -> tuple[list[int], tuple[int, dict[str, Any], dict[str, str]]]:
        return ([curl_sms(app, f"+1415555020{n}")[0] for n in range(2)],
                curl_sms(app, "+14155550202"))

    sent, (status, refused, headers) = within_one_hour(app, lock_out)
    assert sent == [201, 201]
    assert status == 429 and refused["limit"] == "sms-per-caller"
    assert LOCAL_ADVICE in refused["detail"] and "resets in" in refused["detail"]
    assert f"resets in {headers['Retry-After']} s" in refused["detail"]

    status, cleared, _ = http("POST", reset_url, {}, control_headers(app))
    assert status == 200 and cleared["cleared"] >= 3  # the caller's, numbers', country's
    assert "Cleared" in cleared["detail"] and "idempotency keys are kept" in cleared["detail"]
    assert curl_sms(app, "+14155550204")[0] == 201  # the app forgot the count it remembered
    assert cleared["detail"] in app.log()


def test_the_console_sends_as_a_caller_of_its_own(limited_app):
    if not source_address.available():
        pytest.skip(f"this machine has no {source_address.SOURCE} (macOS: sudo ifconfig lo0 "
                    f"alias {source_address.SOURCE})")
    app = limited_app

    def both() -> tuple[list[int], list[int], int]:
        return ([curl_sms(app, f"+1415555050{n}")[0] for n in range(3)],
                [console_sms(app, f"+1415555030{n}") for n in range(3)],
                curl_sms(app, "+14155550503")[0])

    curl, console, curl_again = within_one_hour(app, both)
    assert curl == [201, 201, 429]
    # curl is locked out; the console's "send through the app" is not, and has its own count.
    assert console == [201, 201, 429]
    assert curl_again == 429


@pytest.mark.parametrize(("method", "headers", "status"), [
    ("POST", {}, 415),
    ("POST", {"Content-Type": "application/x-www-form-urlencoded"}, 415),
    ("POST", {**JSON_HEADERS, "Origin": "http://localhost:3000"}, 403),
    ("POST", {**JSON_HEADERS, "Origin": "null"}, 403),
    ("POST", {**JSON_HEADERS, "Sec-Fetch-Site": "same-site"}, 403),
    ("GET", {}, 405),
    ("POST", {**JSON_HEADERS, "Host": "evil.example"}, 421),
])
def test_the_reset_control_refuses_what_a_web_page_could_send(limited_app, method, headers,
                                                                status):
    """Even with the run's token: a page must not drive the control."""
    app = limited_app
    reset(app)
    assert curl_sms(app, "+14155550400")[0] == 201
    body = {} if method == "POST" else None
    token = {CONTROL_HEADER: control_headers(app)[CONTROL_HEADER]}
    answer, document, _ = http(method, f"{app.base_url}/_devhost/reset-limits", body,
                               {**token, **headers})
    assert answer == status and document["status"] == status
    assert reset(app)["cleared"] >= 3  # refused: the counts stood until this reset


@pytest.mark.parametrize("headers", [
    {CONTROL_HEADER: None},  # no token: what anyone reaching the port through a tunnel has
    {CONTROL_HEADER: "guessed"},
    {CONTROL_HEADER: ""},
    {"Host": TUNNEL},  # what a tunnel sends, which --allow-host admits
    {"X-Forwarded-For": "203.0.113.9"},
    {"Forwarded": "for=203.0.113.9"},
    {"X-Forwarded-Host": TUNNEL},
    {"X-Original-Host": TUNNEL},
], ids=["no-token", "wrong-token", "empty-token", "tunnel-host", "x-forwarded-for",
        "forwarded", "x-forwarded-host", "x-original-host"])
def test_the_reset_control_refuses_the_internet_behind_a_tunnel(limited_app, headers):
    """A tunnel agent connects from this machine: only the run's token, sent from here
    and not forwarded, clears the counts."""
    app = limited_app
    reset(app)
    assert curl_sms(app, "+14155550410")[0] == 201
    sent = {name: value for name, value in {**control_headers(app), **headers}.items()
            if value is not None}
    answer, document, _ = http("POST", f"{app.base_url}/_devhost/reset-limits", {}, sent)
    assert (answer, document["status"]) == (403, 403), document
    assert CONTROL_HEADER in document["detail"] or "this machine" in document["detail"]
    assert reset(app)["cleared"] >= 3  # refused: the counts stood until this reset


def test_a_body_the_control_does_not_take_is_refused(limited_app):
    headers = control_headers(limited_app)
    answer, document, _ = http("POST", f"{limited_app.base_url}/_devhost/reset-limits",
                               ["not", "an", "object"], headers)
    assert (answer, document["status"]) == (400, 400)
    own_origin = {**headers, "Origin": limited_app.base_url}
    assert http("POST", f"{limited_app.base_url}/_devhost/reset-limits", {}, own_origin)[0] == 200


def test_the_consoles_reset_limits_reaches_the_host(limited_app):
    """The launcher gives the sandbox the control's URL; its action posts there."""
    app = limited_app
    reset(app)
    assert curl_sms(app, "+14155550600")[0] == 201
    record = app.sandbox("POST", "/_sandbox/actions/reset_limits", {})
    assert record["answer"]["status"] == 200, record
    assert json.loads(record["answer"]["body"])["cleared"] >= 3
    assert reset(app)["cleared"] == 0


TOKEN = "this-runs-token"


@pytest.mark.parametrize(("peer", "host", "headers", "runs"), [
    ("192.0.2.7", "192.0.2.1:7071", {}, False),  # a phone on the network
    ("127.0.0.1", "localhost:7071", {}, True),
    ("::1", "[::1]:7071", {}, True),
    ("127.0.0.1", "127.0.0.1:7071", {CONTROL_HEADER: "not-" + TOKEN}, False),
    ("127.0.0.1", "192.0.2.1:7071", {}, False),  # loopback peer, another name: a proxy
    ("127.0.0.1", "localhost:7071", {"X-Real-IP": "203.0.113.9"}, False),
])
def test_the_controls_answer_this_machine_only(peer, host, headers, runs):
    """Bound to another address (``--host 0.0.0.0``), the host serves the network too."""
    ran: list[bool] = []

    async def control() -> web.Response:
        ran.append(True)
        return web.json_response({})

    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (
        (peer, 50000) if name == "peername" else default)
    request = make_mocked_request("POST", "/_devhost/reset-limits", headers={
        **JSON_HEADERS, CONTROL_HEADER: TOKEN, "Host": host, **headers}, transport=transport)

    async def run() -> int:
        try:
            return (await run_control(request, control, TOKEN)).status
        except Refusal as refusal:
            return refusal.status

    assert asyncio.run(run()) == (200 if runs else 403)
    assert ran == ([True] if runs else [])


def test_a_host_without_a_token_runs_no_control():
    """Fail closed: a host given controls but no token refuses them all."""
    request = make_mocked_request("POST", "/_devhost/reset-limits", headers={
        **JSON_HEADERS, CONTROL_HEADER: "", "Host": "localhost:7071"})

    async def control() -> web.Response:
        raise AssertionError("ran")

    with pytest.raises(Refusal) as refused:
        asyncio.run(run_control(request, control, ""))
    assert refused.value.status == 403
