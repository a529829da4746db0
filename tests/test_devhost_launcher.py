"""``make run`` as a first-time user meets it: ports, keys, signing, settings, help, logs.

Each test starts the launcher (``python -m devhost``, what ``make run`` runs)
as a child process on a free port and reads what it prints, as a user would.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from harness import ACCOUNT_SID, AUTH_TOKEN
from live import ROOT, LiveApp, copy_app
from storage import start_azurite, storage_env
from test_children import command_line, descendants
from twilio.request_validator import RequestValidator

from devhost import azurite, children, launcher
from devhost.local_store import STORAGE_SETTINGS

ENV = {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN}
SMS = {"to": "+14155552671", "body": "hi"}


def http(method: str, url: str, *, data: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, Any, bytes]:
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=15) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def printed_curl(app: LiveApp, path: str) -> list[str]:
    """The words of the banner's curl for ``path``."""
    lines = (line for line in app.stdout_lines if line.strip().startswith("curl"))
    line = next(line for line in lines if path in line)
    return shlex.split(line)


def run_curl(words: list[str]) -> tuple[int, Any, bytes]:
    """Send what a printed curl sends (urllib, so curl need not be installed)."""
    url = next(word for word in words[1:] if word.startswith("http"))
    headers = dict(words[i + 1].split(": ", 1) for i, word in enumerate(words) if word == "-H")
    data = words[words.index("-d") + 1].encode() if "-d" in words else None
    form = [words[i + 1] for i, word in enumerate(words) if word == "--data-urlencode"]
    if form:
        data = "&".join(urllib.parse.quote(f, safe="=") for f in form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    return http("POST" if data is not None else "GET", url, data=data, headers=headers)


def logged(app: LiveApp, text: str) -> str:
    """The log once it holds ``text`` (an access line is written after the answer is sent)."""
    deadline = time.monotonic() + 10
    while text not in (log := app.log()):
        assert time.monotonic() < deadline, log
        time.sleep(0.05)
    return log


def clean_env(**extra: str) -> dict[str, str]:
    """The tests' environment without the settings a test means to control."""
    names = ("FUNCTIONS_LOCAL_KEY", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN")
    return {**{k: v for k, v in os.environ.items() if k not in names}, **extra}


# --- 13: the port -----------------------------------------------------------------------


def test_make_run_takes_a_port() -> None:
    def dry_run(*args: str) -> str:
        return subprocess.run(["make", "--no-print-directory", "-n", "run", *args], cwd=ROOT,
                              capture_output=True, text=True, check=True).stdout

    assert "-m devhost --port 7071" in dry_run()
    assert "-m devhost --port 7072" in dry_run("PORT=7072")


def test_a_busy_port_says_how_to_pick_another(tmp_path: Path) -> None:
    # A copy of the app on the session's Azurite: never the developer's .azurite/.
    app_dir = copy_app(tmp_path / "app")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = children.run(
            [sys.executable, "-m", "devhost", "--app-dir", str(app_dir), "--port", str(port)],
            cwd=ROOT, env=clean_env(**storage_env()), capture_output=True, text=True,
            timeout=60, check=False)
    assert result.returncode == 1
    assert f"port {port}" in result.stderr
    assert f"make run PORT={port + 1}" in result.stderr
    assert "Traceback" not in result.stderr


# --- 14, 15: keys -------------------------------------------------------------------------


@pytest.mark.parametrize("configured", [True, False], ids=["key-set", "key-generated"])
def test_with_enforced_keys_the_printed_curls_carry_the_key(configured: bool) -> None:
    env = {**ENV, "FUNCTIONS_LOCAL_KEY": "local-key-1"} if configured else ENV
    app = LiveApp(env, args=("--sandbox", "--enforce-keys"))
    try:
        url = f"{app.base_url}/api/send_sms"
        for path in ("/api/send_sms", "/api/make_call"):
            words = printed_curl(app, path)
            assert any(w.startswith("x-functions-key: ") for w in words), words
            status, _, body = run_curl(words)
            assert status == 201, body
        key = next(w for w in printed_curl(app, "/api/send_sms") if w.startswith("x-functions-"))
        assert (key == "x-functions-key: local-key-1") is configured
        # Azure's answer to a missing or wrong key: 401, empty body, no Content-Type.
        for headers in ({}, {"x-functions-key": "wrong"}):
            status, answer_headers, body = http(
                "POST", url, data=json.dumps(SMS).encode(),
                headers={"Content-Type": "application/json", **headers})
            assert (status, body) == (401, b"")
            assert answer_headers.get("Content-Type") is None
    finally:
        assert app.stop() == 0


# --- 16, 18: one host name, signing, quiet logs -------------------------------------------


@pytest.fixture(scope="module")
def sandboxed() -> LiveApp:
    app = LiveApp(clean_env(), args=())  # no account configured: random sandbox credentials
    yield app
    assert app.stop() == 0


def test_every_printed_url_names_localhost(sandboxed: LiveApp) -> None:
    printed = "".join(sandboxed.stdout_lines)
    hosts = set(re.findall(r"https?://([^/:'\s]+)", printed))
    assert hosts == {"localhost"}, printed


def test_the_printed_token_signs_any_twiml_url(sandboxed: LiveApp) -> None:
    printed = "".join(sandboxed.stdout_lines)
    token = re.search(r"auth token \(this run only\): (\w+)", printed)[1]
    assert f"devhost.sign URL [-d Name=value ...] --auth-token {token}" in printed
    url = f"{sandboxed.base_url}/api/twiml?message=Signed%20by%20hand"
    signed = children.run(
        [sys.executable, "-m", "devhost.sign", url, "-d", "CallSid=CA" + "1" * 32,
         "--auth-token", token], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    status, _, body = run_curl(shlex.split(signed))
    assert status == 200, body
    assert b"<Say voice=\"woman\">Signed by hand</Say>" in body
    assert run_curl(printed_curl(sandboxed, "/api/twiml"))[0] == 200  # the banner's own


def test_the_sign_command_reads_the_token_from_local_settings(tmp_path: Path) -> None:
    (tmp_path / "local.settings.json").write_text(
        json.dumps({"Values": {"TWILIO_AUTH_TOKEN": AUTH_TOKEN}}), encoding="utf-8")
    url = "http://localhost:7071/api/twiml?message=hi"
    signed = children.run(
        [sys.executable, "-m", "devhost.sign", url, "--app-dir", str(tmp_path)],
        cwd=ROOT, env=clean_env(), capture_output=True, text=True, check=True).stdout
    expected = RequestValidator(AUTH_TOKEN).compute_signature(url, {})
    assert shlex.split(signed) == ["curl", url, "-H", f"X-Twilio-Signature: {expected}"]
    missing = children.run([sys.executable, "-m", "devhost.sign", url, "--app-dir", "/"],
                           cwd=ROOT, env=clean_env(), capture_output=True, text=True)
    assert missing.returncode == 2
    assert "no auth token" in missing.stderr


def test_per_request_host_noise_is_gone_and_a_refusal_is_not_a_success(
    sandboxed: LiveApp,
) -> None:
    status, _, _ = http("POST", f"{sandboxed.base_url}/api/send_sms", data=b"{}",
                        headers={"Content-Type": "application/json"})
    assert status == 400
    log = logged(sandboxed, "POST /api/send_sms 400")
    assert "programmatically called" not in log
    assert "Succeeded" not in log
    assert "Function Type" not in log


def test_verbose_brings_the_invocation_lines_back() -> None:
    app = LiveApp(clean_env(), args=("--verbose",))
    try:
        status, _, _ = http("POST", f"{app.base_url}/api/send_sms", data=b"{}",
                            headers={"Content-Type": "application/json"})
        assert status == 400
        log = logged(app, "(Refused, Status=400")
        assert "Executing 'Functions.send_sms' (Reason=" in log
    finally:
        assert app.stop() == 0


@pytest.mark.parametrize(
    ("path", "expected"),
    [("/API/Send_Sms", 201), ("/api/%C5%BFend_sms", 404), ("/api/ma%E2%84%AAe_call", 404)],
    ids=["ascii-case", "long-s", "kelvin-sign"],
)
def test_function_names_match_without_case_in_ascii_only(
    sandboxed: LiveApp, path: str, expected: int,
) -> None:
    """As on Azure: /API/Send_Sms reaches send_sms; U+017F (long s) is no s, U+212A no K."""
    status, _, _ = http("POST", f"{sandboxed.base_url}{path}", data=json.dumps(SMS).encode(),
                        headers={"Content-Type": "application/json"})
    assert status == expected


# --- the store: one Azurite per data folder -------------------------------------------------


def test_a_second_run_uses_the_azurite_that_already_serves_the_folder(tmp_path: Path) -> None:
    """A second ``make run`` starts no Azurite over the first one's files, and leaves the
    first one's ``serving.json`` alone."""
    app_dir = copy_app(tmp_path / "app")
    data = app_dir / ".azurite"
    first = azurite.Azurite.start(location=data)
    try:
        app = LiveApp(clean_env(STATE_STORAGE=""), args=(), app_dir=app_dir)
        try:
            assert http("POST", f"{app.base_url}/api/send_sms", data=json.dumps(SMS).encode(),
                        headers={"Content-Type": "application/json"})[0] == 201
            below = [command_line(pid) for pid in descendants(app.process.pid)]
            assert not any("azurite" in command for command in below), below
        finally:
            assert app.stop() == 0
        assert "already serves .azurite/" in app.log()
        assert azurite.serving(data) == first.connection_string  # still named, still serving
        assert first.running
    finally:
        first.stop()
    assert not (data / azurite.SERVING_FILE).exists()


def test_a_failure_after_the_store_started_stops_it(tmp_path: Path, monkeypatch) -> None:
    """Azurite is stopped (so it saves), not left to the death signal, when what starts
    after it fails."""
    app_dir = copy_app(tmp_path / "app")
    for name in STORAGE_SETTINGS:  # as unset, and restored after (the launcher sets one)
        monkeypatch.setenv(name, "")

    async def broken_sandbox(*_args: object, **_options: object) -> None:
        assert azurite.serving(app_dir / ".azurite") is not None  # the store is up
        raise RuntimeError("the sandbox did not start")

    monkeypatch.setattr(launcher, "start_sandbox", broken_sandbox)
    args = argparse.Namespace(app_dir=app_dir, sandbox=True, auth=False, sandbox_history=10,
                              allow_host=[], sandbox_mode="test",
                              sandbox_messaging_service=False)
    with pytest.raises(RuntimeError, match="the sandbox did not start"):
        asyncio.run(launcher.serve(args))
    assert not (app_dir / ".azurite" / azurite.SERVING_FILE).exists()


def test_an_azurite_stopping_keeps_the_serving_file_another_wrote(tmp_path: Path) -> None:
    data = tmp_path / ".azurite"
    store = azurite.Azurite.start(location=data)
    other = json.dumps({"host": "127.0.0.1", "port": store.port + 1})
    (data / azurite.SERVING_FILE).write_text(other)  # another instance's, started since
    store.stop()
    assert (data / azurite.SERVING_FILE).read_text() == other


# --- 17: settings ---------------------------------------------------------------------------


def test_the_example_settings_file_brings_no_warnings(tmp_path: Path) -> None:
    app_dir = copy_app(tmp_path / "app")
    (app_dir / "local.settings.json").write_text(
        (ROOT / "local.settings.json.example").read_text(encoding="utf-8"), encoding="utf-8")
    # The example's own rate limits, on a store of its own: the session's counts
    # (every other test sends under roomy limits) would trip them.
    azurite = start_azurite()
    app = LiveApp(clean_env(STATE_STORAGE=azurite.connection_string), args=(), app_dir=app_dir,
                  limits={})
    try:
        assert http("POST", f"{app.base_url}/api/send_sms", data=json.dumps(SMS).encode(),
                    headers={"Content-Type": "application/json"})[0] == 201
    finally:
        assert app.stop() == 0
        azurite.stop()
    assert "Skipping" not in app.log()
    assert "already defined in the environment" not in app.log()
    assert "SETTINGS PROBLEM" not in "".join(app.stdout_lines)


def test_a_malformed_setting_is_reported_at_start(tmp_path: Path) -> None:
    app_dir = copy_app(tmp_path / "app")
    settings = {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                "TWILIO_FROM_NUMBER": "abc", "TWILIO_API_BASE_URL": "http://127.0.0.1:9"}
    (app_dir / "local.settings.json").write_text(json.dumps({"Values": settings}))
    app = LiveApp(clean_env(), args=(), app_dir=app_dir)
    try:
        printed = "".join(app.stdout_lines)
        assert "SETTINGS PROBLEM: App setting TWILIO_FROM_NUMBER must be a phone number" in printed
        assert "abc" not in printed.split("SETTINGS PROBLEM", 1)[1].splitlines()[0]
        assert "Settings problem: App setting TWILIO_FROM_NUMBER" in app.log()
    finally:
        assert app.stop() == 0


# --- 19: help -------------------------------------------------------------------------------


def test_help_is_plain_text() -> None:
    result = children.run([sys.executable, "-m", "devhost", "--help"], cwd=ROOT,
                          capture_output=True, text=True, check=True)
    assert "``" not in result.stdout
    assert "Serve this function app on http://localhost:7071" in result.stdout
    for option in ("--port", "--app-dir", "--enforce-keys", "--sandbox", "--allow-host"):
        assert re.search(rf"^\s+{option}\b.*\S", result.stdout, re.MULTILINE), option


# --- 23: sandbox mode clears what could reach Twilio or another host -------------------------

# What a developer may have set for production; a sandbox run must ignore each of them.
AWAY = {"PUBLIC_BASE_URL": "https://calls.contoso.example",
        "TWILIO_API_KEY_SID": "SK" + "c3" * 16, "TWILIO_API_KEY_SECRET": "not-the-sandbox-s3cr3t",
        "TWILIO_MESSAGING_SERVICE_SID": "MG" + "e5" * 16}


@pytest.mark.parametrize("where", ["environment", "local.settings.json"])
def test_sandbox_mode_clears_public_url_api_key_and_messaging_service(
    tmp_path: Path, where: str,
) -> None:
    app_dir = copy_app(tmp_path / "app")
    env = clean_env(**ENV)
    if where == "environment":
        env.update(AWAY)
    else:
        (app_dir / "local.settings.json").write_text(json.dumps({"Values": AWAY}))
    app = LiveApp(env, args=("--sandbox",), app_dir=app_dir)
    try:
        json_headers = {"Content-Type": "application/json"}
        status, _, body = http("POST", f"{app.base_url}/api/send_sms",
                               data=json.dumps(SMS).encode(), headers=json_headers)
        assert status == 201, body  # an API key unknown to the sandbox would have been 502
        call = {"to": "+14155552671", "message": "cleared"}
        status, _, body = http("POST", f"{app.base_url}/api/make_call",
                               data=json.dumps(call).encode(), headers=json_headers)
        assert status == 201, body
        state = app.wait_for(lambda s: any(c.get("heard") for c in s["calls"]))
    finally:
        assert app.stop() == 0
    [message] = state["messages"]
    assert (message["from"], message["messaging_service_sid"]) == ("+15005550006", None)
    [placed] = state["calls"]
    assert placed["request"]["Url"].startswith(f"{app.base_url}/api/twiml?"), placed["request"]
    assert "contoso" not in json.dumps(state)


def test_allowed_host_names_reach_the_sandbox_as_well_as_the_host() -> None:
    """A forwarded port's name (a remote dev box) opens the console as it opens the app."""
    app = LiveApp(clean_env(), args=("--sandbox", "--allow-host", "devbox.example"))
    try:
        answers = {}
        for name, url in (("host", f"{app.base_url}/api/twiml"),
                          ("sandbox", f"{app.sandbox_url}/_sandbox/state")):
            port = url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1]
            for host in ("devbox.example", "other.example"):
                request = urllib.request.Request(url, headers={"Host": f"{host}:{port}"})
                try:
                    with urllib.request.urlopen(request, timeout=15) as answer:
                        answers[name, host] = answer.status
                except urllib.error.HTTPError as error:
                    answers[name, host] = error.code
    finally:
        assert app.stop() == 0
    assert answers[("sandbox", "devbox.example")] == 200
    assert answers[("sandbox", "other.example")] == 421
    assert answers[("host", "other.example")] == 421
    assert answers[("host", "devbox.example")] != 421  # twiml's own answer (unsigned: 403)
