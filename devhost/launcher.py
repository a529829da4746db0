"""``make run``: serve the app on localhost:7071, on a local Twilio sandbox if need be.

With a Twilio account configured (``TWILIO_ACCOUNT_SID`` and
``TWILIO_AUTH_TOKEN`` in the environment or local.settings.json) the app talks
to Twilio. Without one, or with ``--sandbox``, a local Twilio sandbox starts in
the same process and the app is pointed at it: the account's credentials (the
configured ones, else random ones), ``TWILIO_FROM_NUMBER`` set to the
sandbox's always-valid sender +15005550006, and no API key, Messaging Service
or ``PUBLIC_BASE_URL``, so nothing can reach Twilio or another host. It
prints the function URLs and a ready-to-paste ``curl`` for each; Ctrl-C stops
the host and the sandbox together.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shlex
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from twilio.request_validator import RequestValidator

from devhost.auth import KEY_SETTING
from devhost.host import READY_PREFIX, FunctionHost
from devhost.logs import configure_logging
from devhost.server import describe
from devhost.settings_file import SettingsError, read_values
from devhost.twilio_sandbox import READY_PREFIX as SANDBOX_READY
from devhost.twilio_sandbox import VALID_FROM, TwilioSandbox

CREDENTIALS = ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN")
# Settings that could send a sandbox run to Twilio or another host.
CLEARED_IN_SANDBOX = ("TWILIO_API_KEY_SID", "TWILIO_API_KEY_SECRET",
                      "TWILIO_MESSAGING_SERVICE_SID", "PUBLIC_BASE_URL", "WEBSITE_HOSTNAME")


def configured(name: str, file_values: dict[str, str]) -> str:
    return os.environ.get(name) or file_values.get(name) or ""


async def start_sandbox(file_values: dict[str, str]) -> TwilioSandbox:
    """Start the sandbox and point the app's settings at it (before the host applies the file)."""
    account_sid = configured("TWILIO_ACCOUNT_SID", file_values) or "AC" + secrets.token_hex(16)
    auth_token = configured("TWILIO_AUTH_TOKEN", file_values) or secrets.token_hex(16)
    sandbox = TwilioSandbox(accounts={account_sid: auth_token})
    base_url = await sandbox.start("127.0.0.1", 0)
    os.environ.update({
        "TWILIO_ACCOUNT_SID": account_sid,
        "TWILIO_AUTH_TOKEN": auth_token,
        "TWILIO_FROM_NUMBER": VALID_FROM,
        "TWILIO_API_BASE_URL": base_url,
        **dict.fromkeys(CLEARED_IN_SANDBOX, ""),
    })
    return sandbox


def try_it(urls: dict[str, str], auth_token: str, sandbox: TwilioSandbox | None) -> list[str]:
    """Ready-to-paste commands for each function (twiml's carries a valid signature)."""
    json_post = "curl -X POST {url} -H 'Content-Type: application/json' -d {body}"
    sms = json.dumps({"to": "+14155552671", "body": "Hello from Azure Functions"})
    call = json.dumps({"to": "+14155552671", "message": "Hello from Azure Functions"})
    twiml_url = f"{urls['twiml']}?message=Hello%20from%20Azure%20Functions"
    signature = RequestValidator(auth_token).compute_signature(twiml_url, {})
    lines = [
        json_post.format(url=urls["send_sms"], body=shlex.quote(sms)),
        json_post.format(url=urls["make_call"], body=shlex.quote(call)),
        f"curl {shlex.quote(twiml_url)} -H 'X-Twilio-Signature: {signature}'",
    ]
    if sandbox is not None:
        lines.append(f"curl {sandbox.base_url}/_sandbox/state   # what the sandbox received")
    return lines


async def serve(args: argparse.Namespace) -> int:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    try:
        file_values = read_values(args.app_dir / "local.settings.json") or {}
    except SettingsError as error:
        print(f"Cannot start: {error}", file=sys.stderr)
        return 1
    use_sandbox = args.sandbox or not all(configured(n, file_values) for n in CREDENTIALS)
    sandbox = await start_sandbox(file_values) if use_sandbox else None
    host = FunctionHost(args.app_dir, enforce_keys=args.enforce_keys)
    try:
        try:
            base_url = await host.start(args.host, args.port)
        except OSError as error:
            print(f"Cannot serve on {args.host}:{args.port}: {error}", file=sys.stderr)
            return 1
        shown = base_url.replace("127.0.0.1", "localhost")
        _banner(host, shown, sandbox)
        print(f"{READY_PREFIX} {base_url}", flush=True)
        await stopping.wait()
    finally:
        await host.stop()
        await close_app_clients()
        if sandbox is not None:
            await sandbox.stop()
    return 0


async def close_app_clients() -> None:
    """Close the app's Twilio sessions, which live on this loop (Azure just ends the worker)."""
    client_module = sys.modules.get("shared.twilio_client")
    if client_module is not None:
        await client_module.close_clients()


def _banner(host: FunctionHost, base_url: str, sandbox: TwilioSandbox | None) -> None:
    print("\nFunctions:")
    for function in host.functions.values():
        print(f"    {describe(function, base_url)}")
    print("\nTry them:")
    urls = {f.name: f"{base_url}{f.route}" for f in host.functions.values() if f.route}
    for line in try_it(urls, os.environ["TWILIO_AUTH_TOKEN"], sandbox):
        print(f"    {line}")
    if sandbox is not None:
        print("\nNo Twilio account configured: NOTHING REAL IS SENT. Calls and messages go to "
              "a local Twilio sandbox; copy local.settings.json.example to local.settings.json "
              "and fill in your account to use Twilio.")
        print(f"{SANDBOX_READY} {sandbox.base_url}")
    else:
        print("\nTwilio account configured: calls and messages are REAL and billed.")
    print(flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devhost", description=__doc__.split("\n")[0])
    parser.add_argument("--app-dir", type=Path, default=Path())
    parser.add_argument("--host", default="127.0.0.1", help="address to bind")
    parser.add_argument("--port", type=int, default=7071, help="port; 0 picks a free one")
    parser.add_argument("--sandbox", action="store_true",
                        help="use the local Twilio sandbox even if an account is configured")
    # Off by default, like Core Tools; on, the sandbox run checks keys as Azure does.
    parser.add_argument("--enforce-keys", action="store_true",
                        help=f"require the {KEY_SETTING} key (x-functions-key header or code "
                        "query parameter) for make_call and send_sms, as Azure does")
    args = parser.parse_args(argv)
    args.app_dir = args.app_dir.resolve()
    configure_logging()
    os.chdir(args.app_dir)  # as on Azure: functions run in the app folder
    return asyncio.run(serve(args))
