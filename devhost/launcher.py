"""``make run``: serve the app on localhost:7071, on a local Twilio sandbox if need be.

With a Twilio account configured (``TWILIO_ACCOUNT_SID`` and
``TWILIO_AUTH_TOKEN`` in the environment or local.settings.json) the app talks
to Twilio. Without one, or with ``--sandbox``, a local Twilio sandbox starts in
the same process and the app is pointed at it: the account's credentials (the
configured ones, else random ones), ``TWILIO_FROM_NUMBER`` set to the
sandbox's always-valid sender +15005550006, an API key and a TwiML App only
the sandbox knows (Voice SDK tokens work without a Twilio account; the App's
Voice URL is the app's ``voice``), and no Messaging Service or
``PUBLIC_BASE_URL``, so nothing can reach Twilio or another host. Callers
without a signed-in user get the Voice SDK identity ``developer`` (unless
``VOICE_SINGLE_USER_IDENTITY`` is set), which calls to the sandbox's number
ring too (unless ``VOICE_INCOMING_IDENTITY`` is set). It
prints the function URLs and a ready-to-paste ``curl`` for each; Ctrl-C stops
the host and the sandbox together.

Every URL it prints names the host ``localhost`` (the signed twiml URL too:
the host name is part of what Twilio signs), and a setting the app cannot
parse is reported here, at start, rather than by the first request.

Delivery status needs Table Storage, queue-triggered functions Queue
Storage: unless a storage connection is configured, Azurite (the emulator)
starts too (both services; ``STATE_STORAGE`` and ``AzureWebJobsStorage`` name
it), keeping its data in ``.azurite/`` so a restart keeps the history, and the rate limits' counts
with it: ``--reset-limits`` clears those counts (``devhost.local_store``), as
does the host's ``POST /_devhost/reset-limits``, whose URL the sandbox's console
gets. ``--auth`` emulates App Service Authentication (``devhost.easy_auth``).
``--sandbox-url`` attaches to a sandbox that already serves (the load test's
several hosts share one), and a configured ``STATE_STORAGE`` to an Azurite.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import importlib
import json
import os
import secrets
import shlex
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from devhost import azurite, easy_auth, local_store
from devhost.auth import KEY_HEADER, KEY_SETTING
from devhost.host import READY_PREFIX, FunctionHost
from devhost.host_routes import CONTROL_HEADER
from devhost.host_routes import PREFIX as CONTROL_PREFIX
from devhost.local_store import AZURITE_DATA, RESET_CONTROL, STORAGE_SETTINGS, Counters
from devhost.logs import configure_logging
from devhost.server import describe
from devhost.settings_file import SettingsError, configured, read_values
from devhost.sign import signed_curl
from push_sandbox import DEFAULT_HUB, NotificationHubsDouble
from push_sandbox import PREFIX as PUSH_PREFIX
from push_sandbox import build_app as push_app
from shared.urls import STATUS_CALLBACK_OVERRIDES
from twilio_sandbox import READY_PREFIX as SANDBOX_READY
from twilio_sandbox import VALID_FROM, TwilioSandbox
from twilio_sandbox.magic import MODES, Mode
from twilio_sandbox.messaging_services import MessagingService
from twilio_sandbox.state import DEFAULT_HISTORY
from twilio_sandbox.twiml_app import TwimlApp

DESCRIPTION = (
    "Serve this function app on http://localhost:7071 with Azure's Python v1 runtime. "
    "Without a Twilio account configured (or with --sandbox), a local Twilio sandbox "
    "starts too and nothing real is sent. Ctrl-C stops everything."
)
SHOWN_HOST = "localhost"

CREDENTIALS = ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN")
DEV_USER = "alice"
# The Voice SDK identity of a sandbox run's callers without a signed-in user.
DEV_IDENTITY = "developer"
# Settings that could send a sandbox run to Twilio or another host (the API key
# is replaced by one only the sandbox knows).
CLEARED_IN_SANDBOX = ("TWILIO_MESSAGING_SERVICE_SID", "PUBLIC_BASE_URL", "WEBSITE_HOSTNAME")
# The app's Notification Hubs settings (shared/settings.py), pointed at the sandbox's
# double (push_sandbox) unless the user configured a hub of their own.
PUSH_CONNECTION, PUSH_HUB = "NOTIFICATION_HUBS_CONNECTION", "NOTIFICATION_HUBS_HUB"


#: What the banner says of each sandbox mode.
MODE_LINES: dict[str, str] = {
    "test": "test (Twilio's test-credential magic numbers decide; --sandbox-mode live-like "
            "for any valid number)",
    "live-like": "live-like (any valid number succeeds, as with live credentials)",
}


def shown(url: str) -> str:
    """``url`` as printed: one host name for everything the user reads or signs."""
    return url.replace("//127.0.0.1:", f"//{SHOWN_HOST}:", 1)


class SandboxRun:
    """The sandbox and what it set: names the settings file must not warn about."""

    def __init__(self, sandbox: TwilioSandbox, settings: dict[str, str], token_generated: bool,
                 push: NotificationHubsDouble | None = None):
        self.sandbox = sandbox
        self.settings = settings
        self.token_generated = token_generated
        #: The Notification Hubs double the sandbox serves (under PUSH_PREFIX).
        self.push = push

    def connect(self, urls: dict[str, str], key: str | None, reset_limits: str,
                control_token: str) -> None:
        """Tell the sandbox where the app answers (the console's traffic, the TwiML App),
        and the host control that clears the rate limits (``reset_limits``, a URL, which
        takes ``control_token``)."""
        self.sandbox.app.functions = {**urls, "reset_limits": reset_limits}
        self.sandbox.app.key = key
        self.sandbox.app.control_token = control_token
        if "voice" in urls:  # configured as docs/deploy.md configures it on Twilio
            callback = urls.get("status_callback")
            self.sandbox.add_twiml_app(TwimlApp(
                self.settings["TWILIO_TWIML_APP_SID"], self.settings["TWILIO_ACCOUNT_SID"],
                urls["voice"], callback and f"{callback}#{STATUS_CALLBACK_OVERRIDES}"))


async def start_sandbox(file_values: dict[str, str], history: int = DEFAULT_HISTORY,
                        allowed_hosts: Sequence[str] = (), mode: Mode = "test",
                        messaging_service: bool = False) -> SandboxRun:
    """Start the sandbox and point the app's settings at it (before the host applies the file).

    ``mode``: how the sandbox's credentials decide numbers (twilio_sandbox.magic);
    ``messaging_service``: its number is in a Messaging Service of its own, which the
    app sends through (``TWILIO_MESSAGING_SERVICE_SID``)."""
    account_sid = configured("TWILIO_ACCOUNT_SID", file_values) or "AC" + secrets.token_hex(16)
    auth_token = configured("TWILIO_AUTH_TOKEN", file_values)
    generated = not auth_token
    auth_token = auth_token or secrets.token_hex(16)
    key_sid, key_secret = "SK" + secrets.token_hex(16), secrets.token_hex(16)
    sandbox = TwilioSandbox(accounts={account_sid: auth_token},
                            api_keys={key_sid: (key_secret, account_sid)}, history=history,
                            mode=mode)
    push = NotificationHubsDouble(hubs=(configured(PUSH_HUB, file_values) or DEFAULT_HUB,))
    sandbox.mount(PUSH_PREFIX, push_app(push))
    base_url = await sandbox.start("127.0.0.1", 0, allowed_hosts)
    identity = configured("VOICE_SINGLE_USER_IDENTITY", file_values) or DEV_IDENTITY
    settings = {
        "TWILIO_ACCOUNT_SID": account_sid,
        "TWILIO_AUTH_TOKEN": auth_token,
        "TWILIO_API_KEY_SID": key_sid,
        "TWILIO_API_KEY_SECRET": key_secret,
        "TWILIO_TWIML_APP_SID": "AP" + secrets.token_hex(16),
        "TWILIO_FROM_NUMBER": VALID_FROM,
        "TWILIO_API_BASE_URL": base_url,
        "VOICE_SINGLE_USER_IDENTITY": identity,
        "VOICE_INCOMING_IDENTITY": configured("VOICE_INCOMING_IDENTITY", file_values) or identity,
        **dict.fromkeys(CLEARED_IN_SANDBOX, ""),
    }
    if messaging_service:
        service = MessagingService("MG" + secrets.token_hex(16), (VALID_FROM,))
        sandbox.add_messaging_service(service)
        settings["TWILIO_MESSAGING_SERVICE_SID"] = service.sid
    if not configured(PUSH_CONNECTION, file_values):  # the user's own hub wins
        settings[PUSH_CONNECTION] = push.connection_string(f"{base_url}{PUSH_PREFIX}")
        settings[PUSH_HUB] = next(iter(push.hubs))
    os.environ.update(settings)
    return SandboxRun(sandbox, settings, generated, push)


def attach_sandbox(url: str, file_values: dict[str, str]) -> dict[str, str]:
    """Point the app at a sandbox that already serves ``url`` (another run's, or
    ``python -m twilio_sandbox``'s), as ``start_sandbox`` points it at its own.

    The account is the configured one, which must be the sandbox's: several hosts
    attached to one sandbox (the load test's scale-out profile) share its history.
    Raises ``ValueError`` when no account is configured or ``url`` is not loopback.
    """
    if not all(configured(name, file_values) for name in CREDENTIALS):
        raise ValueError(f"--sandbox-url needs the sandbox's account: {' and '.join(CREDENTIALS)}")
    if not url.startswith(("http://127.0.0.1:", "http://localhost:", "http://[::1]:")):
        raise ValueError(f"--sandbox-url must be a loopback http URL, not {url!r}")
    settings = {"TWILIO_API_BASE_URL": url.rstrip("/"), "TWILIO_FROM_NUMBER": VALID_FROM,
                **dict.fromkeys(CLEARED_IN_SANDBOX, "")}
    os.environ.update(settings)
    return settings


def start_store(file_values: dict[str, str], app_dir: Path) -> azurite.Azurite | None:
    """Azurite for delivery status, unless a storage connection other than it is configured.

    Nothing configured: on a free port, data in ``.azurite/``, and ``STATE_STORAGE``
    pointed at it, unless an Azurite already serves that folder (another ``make run``'s):
    then that one, which this run neither starts nor stops (two over the same files
    would overwrite each other's data). ``UseDevelopmentStorage=true``: on its
    well-known port, unless something (the developer's own Azurite) already listens there.
    Either way ``AzureWebJobsStorage`` and ``STATE_STORAGE`` name it (``_use_storage``);
    only ``STATE_STORAGE`` configured, the host's queues are in that account too, where
    the app enqueues (``shared.settings``: a local run keeps one account for both).
    """
    given = {name: configured(name, file_values) for name in STORAGE_SETTINGS}
    development = any(v.lower() == "usedevelopmentstorage=true" for v in given.values())
    host_storage = ("AzureWebJobsStorage", "AzureWebJobsStorage__queueServiceUri")
    if given["STATE_STORAGE"] and not any(configured(n, file_values) for n in host_storage):
        _use_storage(given["STATE_STORAGE"])
    if any(given.values()) and not development:
        return None
    if development and azurite.port_in_use(azurite.DEFAULT_PORT):
        return None
    location = app_dir / AZURITE_DATA
    running = None if development else azurite.serving(location)
    if running is not None:
        print(f"Using the Azurite that already serves {AZURITE_DATA}/ (another `make run`?); "
              "it stops with what started it.", file=sys.stderr)
        _use_storage(running)
        return None
    if not azurite.is_installed():
        print(f"Azurite is not installed ({azurite.INSTALL} needs node and npm): delivery "
              "status is OFF (no status callbacks, status answers 500)", file=sys.stderr)
        return None
    port, queue_port = (azurite.DEFAULT_PORT, azurite.DEFAULT_QUEUE_PORT) if development else (0, 0)
    store = azurite.Azurite.start(location=location, port=port, queue_port=queue_port,
                                  log=location / "azurite.log")
    if not development:
        _use_storage(store.connection_string)
    return store


def _use_storage(connection: str) -> None:
    """Point the app and the host at this run's Azurite: ``STATE_STORAGE`` (the app's tables)
    and ``AzureWebJobsStorage`` (the host's storage, whose queues the queue triggers read and
    the app enqueues to), one connection string with ``TableEndpoint`` and ``QueueEndpoint``."""
    os.environ["STATE_STORAGE"] = os.environ["AzureWebJobsStorage"] = connection  # noqa: SIM112


def try_it(
    urls: dict[str, str], auth_token: str, sandbox: TwilioSandbox | None, key: str | None = None,
    signed_in: bool = False,
) -> list[str]:
    """Ready-to-paste commands for each function (twiml's signed, the others keyed if need be,
    with a signed-in user when authentication is emulated)."""
    keyed = f" -H {shlex.quote(f'{KEY_HEADER}: {key}')}" if key else ""
    if signed_in:
        keyed += f" -H {shlex.quote(f'Authorization: {easy_auth.bearer(DEV_USER)}')}"
    json_post = "curl -X POST {url} -H 'Content-Type: application/json'" + keyed + " -d {body}"
    sms = json.dumps({"to": "+14155552671", "body": "Hello from Azure Functions"})
    call = json.dumps({"to": "+14155552671", "message": "Hello from Azure Functions"})
    lines = [
        json_post.format(url=urls["send_sms"], body=shlex.quote(sms)),
        json_post.format(url=urls["make_call"], body=shlex.quote(call)),
        signed_curl(f"{urls['twiml']}?message=Hello%20from%20Azure%20Functions", auth_token),
    ]
    if "status" in urls:
        status_url = urls["status"].replace("{sid}", "<sid>")
        lines.append(f"curl '{status_url}'{keyed}   # <sid>: what send_sms or make_call "
                     "answered")
    if sandbox is not None and "conversations" in urls:
        reply = json.dumps({"from": "+14155552671", "body": "Sounds good!"})
        lines.append(f"curl -X POST {shown(sandbox.base_url)}/_sandbox/inbound/sms -H "
                     f"'Content-Type: application/json' -d {shlex.quote(reply)}   # they reply")
        thread_url = (urls["conversations"].replace("{number?}", "+14155552671")
                      .replace("/{action?}", ""))
        lines.append(f"curl '{thread_url}'{keyed}   # the conversation, both ways")
    if "voice_token" in urls:
        lines.append(f"curl -X POST {urls['voice_token']}{keyed}   # a Voice SDK token")
    if sandbox is not None and "voice_token" in urls:
        client_call = json.dumps({"token": "<token>", "to": "+14155552671"})
        lines.append(f"curl -X POST {shown(sandbox.base_url)}/_sandbox/client_calls -H "
                     f"'Content-Type: application/json' -d {shlex.quote(client_call)}   # the "
                     "app calls with <token>, what voice_token answered; shows what was dialed")
    if sandbox is not None:
        lines.append(f"curl {shown(sandbox.base_url)}/_sandbox/state   # what the sandbox received")
    return lines


def setting_problem() -> str | None:
    """What the app would answer 500 ``misconfigured`` about, if anything (settings applied)."""
    settings = importlib.import_module("shared.settings")
    try:
        settings.load_settings()
    except settings.SettingError as error:
        return str(error)
    return None


def function_key(enforce: bool, file_values: dict[str, str]) -> str | None:
    """The key keyed functions need: the configured one, else a fresh one for this run."""
    if not enforce:
        return None
    key = configured(KEY_SETTING, file_values)
    if not key:
        key = secrets.token_urlsafe(24)
        os.environ[KEY_SETTING] = key
        print(f"{KEY_SETTING} is not set: this run's function key is {key}")
    return key


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
    # Whatever started is stopped however this ends, in the reverse order (an error
    # between two starts too: the death signal alone would not let Azurite save).
    async with contextlib.AsyncExitStack() as started:
        return await _serve(args, file_values, stopping, started)


async def _serve(args: argparse.Namespace, file_values: dict[str, str], stopping: asyncio.Event,
                 started: contextlib.AsyncExitStack) -> int:
    attached: dict[str, str] = {}
    if getattr(args, "sandbox_url", None):  # --sandbox-url
        try:
            attached = attach_sandbox(args.sandbox_url, file_values)
        except ValueError as error:
            print(f"Cannot start: {error}", file=sys.stderr)
            return 1
    use_sandbox = not attached and (
        args.sandbox or not all(configured(n, file_values) for n in CREDENTIALS))
    try:
        store = start_store(file_values, args.app_dir)
    except azurite.AzuriteError as error:
        print(f"Cannot start: {error}", file=sys.stderr)
        return 1
    if store is not None:
        started.callback(store.stop)
    # Settings this run set itself, and storage entries the file leaves blank (it
    # configures nothing there): the environment winning over them is no news.
    ours = [name for name in STORAGE_SETTINGS if not file_values.get(name, "").strip()]
    if args.auth:
        os.environ["WEBSITE_AUTH_ENABLED"] = "True"  # as Azure sets it when authentication is on
        ours.append("WEBSITE_AUTH_ENABLED")
    run = (await start_sandbox(file_values, args.sandbox_history, args.allow_host,
                               args.sandbox_mode, args.sandbox_messaging_service)
           if use_sandbox else None)
    if run is not None:
        started.push_async_callback(run.sandbox.stop)
    key = function_key(args.enforce_keys, file_values)
    counters = local_store.find_counters(file_values, args.app_dir, store)
    control_token = secrets.token_urlsafe(24)  # this run's: its controls need it
    host = FunctionHost(
        args.app_dir,
        enforce_keys=args.enforce_keys,
        allowed_hosts=args.allow_host,
        quiet_settings=frozenset([*(run.settings if run else ()), *attached, *ours]),
        easy_auth=args.auth,
        controls={RESET_CONTROL: local_store.reset_limits_control(counters)},
        control_token=control_token,
    )
    started.push_async_callback(close_app_clients)
    started.push_async_callback(host.stop)
    try:
        base_url = await host.start(args.host, args.port)
    except OSError as error:
        _cannot_serve(args, error)
        return 1
    urls = function_urls(host, shown(base_url))
    reset_limits = f"{shown(base_url)}{CONTROL_PREFIX}{RESET_CONTROL}"
    if run is not None:  # the console sends inbound traffic and app requests here
        run.connect(urls, key, reset_limits, control_token)
    _banner(host, shown(base_url), run, key, args.auth, attached.get("TWILIO_API_BASE_URL"))
    if counters.refusal is None:
        print(_limits_line(counters, reset_limits, control_token, console=run is not None),
              flush=True)
    print(f"{READY_PREFIX} {shown(base_url)}", flush=True)
    await stopping.wait()
    return 0


def _limits_line(counters: Counters, reset_url: str, token: str, console: bool) -> str:
    control = shlex.quote(f"{CONTROL_HEADER}: {token}")
    ways = ["`python -m devhost --reset-limits`",
            f"`curl -X POST {reset_url} -H 'Content-Type: application/json' -H {control}`"]
    if console:
        ways.append("the console's \"Reset limits\"")
    return (f"Rate limits count in {counters.where} and outlast restarts; to clear the counts: "
            f"{', '.join(ways[:-1])} or {ways[-1]}.\n")


def _cannot_serve(args: argparse.Namespace, error: OSError) -> None:
    print(f"Cannot serve on {args.host}:{args.port}: {error.strerror or error}", file=sys.stderr)
    if error.errno == errno.EADDRINUSE:
        other = args.port + 1 if 0 < args.port < 65535 else 7072
        print(
            f"Another process is using port {args.port} (a `make run` still running?). Stop "
            f"it, or pick another port: `make run PORT={other}`, or `.venv/bin/python -m "
            f"devhost --port {other}` (--port 0 picks a free one).",
            file=sys.stderr,
        )


def function_urls(host: FunctionHost, base_url: str) -> dict[str, str]:
    """Each HTTP function's URL, by function name."""
    return {f.name: f"{base_url}{f.route}" for f in host.functions.values() if f.route}


#: The app's modules that keep sessions per loop, and what closes them.
APP_CLIENTS = (("shared.twilio_client", "close_clients"), ("shared.store", "close_stores"),
               ("shared.notification_hubs", "close_hubs"), ("shared.push", "close_queues"))


async def close_app_clients() -> None:
    """Close the app's sessions (Twilio, the store, Notification Hubs, the push queue),
    which live on this loop (Azure just ends the worker)."""
    for name, closer in APP_CLIENTS:
        module = sys.modules.get(name)
        if module is not None:
            await getattr(module, closer)()


def _banner(host: FunctionHost, base_url: str, run: SandboxRun | None, key: str | None,
            signed_in: bool = False, attached: str | None = None) -> None:
    print("\nFunctions:")
    for function in host.functions.values():
        print(f"    {describe(function, base_url)}")
    print("\nTry them:")
    urls = function_urls(host, base_url)
    auth_token = os.environ["TWILIO_AUTH_TOKEN"]
    for line in try_it(urls, auth_token, run.sandbox if run else None, key, signed_in):
        print(f"    {line}")
    if signed_in:
        print(f"\nApp Service Authentication emulated: 'Authorization: "
              f"{easy_auth.bearer('<user>')}' signs <user> in; client X-MS-CLIENT-PRINCIPAL* "
              "headers are dropped.")
    sign = ".venv/bin/python -m devhost.sign URL [-d Name=value ...]"
    if run is not None and run.token_generated:  # random for this run: not a secret
        print(f"\nSandbox auth token (this run only): {auth_token}\nSign any twiml URL: "
              f"{sign} --auth-token {auth_token}")
    else:
        print(f"\nSign any twiml URL: {sign}   (uses TWILIO_AUTH_TOKEN)")
    if run is not None:
        print("\nNo Twilio account configured: NOTHING REAL IS SENT. Calls and messages go to "
              "a local Twilio sandbox; copy local.settings.json.example to local.settings.json "
              "and fill in your account to use Twilio.")
        print(f"\nConsole (live messages, calls and webhooks; play Twilio's part): "
              f"{shown(run.sandbox.base_url)}/console/")
        print(f"Sandbox mode: {MODE_LINES[run.sandbox.mode]}")
        if run.push is not None and PUSH_CONNECTION in run.settings:
            print(f"Push: a local Notification Hubs double at "
                  f"{shown(run.sandbox.base_url)}{PUSH_PREFIX} (devices and their pushes: the "
                  "console's Devices view)")
        print(f"{SANDBOX_READY} {shown(run.sandbox.base_url)}")
    elif attached is not None:
        print(f"\nTwilio sandbox at {shown(attached)} (started elsewhere): NOTHING REAL IS SENT.")
        print(f"{SANDBOX_READY} {shown(attached)}")
    else:
        print("\nTwilio account configured: calls and messages are REAL and billed.")
    problem = setting_problem()
    if problem is not None:
        message = (f"{problem}. make_call, send_sms and twiml answer 500 misconfigured until "
                   "it is fixed (local.settings.json or the environment).")
        print(f"\nSETTINGS PROBLEM: {message}")
        print(f"Settings problem: {message}", file=sys.stderr)
    print(flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devhost", description=DESCRIPTION)
    parser.add_argument("--app-dir", type=Path, default=Path(),
                        help="the function app's folder (default: the current one)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1: this machine only; another "
                        "address also answers any Host name)")
    parser.add_argument("--port", type=int, default=7071,
                        help="port (default 7071, as `make run PORT=...` sets; 0 picks a free one)")
    parser.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                        help="also answer requests for Host NAME, e.g. a tunnel's (* for any)")
    parser.add_argument("--sandbox", action="store_true",
                        help="use the local Twilio sandbox even if an account is configured")
    # Off by default, like Core Tools; on, the sandbox run checks keys as Azure does.
    parser.add_argument("--enforce-keys", action="store_true",
                        help=f"require the {KEY_SETTING} key (x-functions-key header or code "
                        "query parameter) for every function whose authLevel is function, as "
                        "Azure does")
    parser.add_argument("--verbose", action="store_true",
                        help="also log each invocation's start and outcome (debug level)")
    parser.add_argument("--sandbox-history", type=int, default=DEFAULT_HISTORY, metavar="N",
                        help="messages, calls and webhooks the sandbox keeps, each "
                        f"(default {DEFAULT_HISTORY})")
    parser.add_argument("--sandbox-mode", choices=MODES, default="test",
                        help="how the sandbox's credentials decide numbers: test (default: as "
                        "Twilio's test credentials, the magic numbers, so the sender "
                        f"{VALID_FROM} works and every error can be reached) or live-like (as "
                        "live credentials: any valid number succeeds)")
    parser.add_argument("--sandbox-messaging-service", action="store_true",
                        help="put the sandbox's number in a Messaging Service that the app "
                        "sends through (TWILIO_MESSAGING_SERVICE_SID), as in production")
    parser.add_argument("--sandbox-url", metavar="URL",
                        help="use the Twilio sandbox already serving at URL (another run's, "
                        "or `python -m twilio_sandbox`'s) instead of starting one; the "
                        "configured account must be the sandbox's")
    parser.add_argument("--reset-limits", action="store_true",
                        help=f"clear the app's rate-limit counts in {AZURITE_DATA}/ (not its "
                        "messages nor idempotency keys) and exit; works whether or not "
                        "`python -m devhost` runs")
    parser.add_argument("--auth", action="store_true",
                        help="emulate App Service Authentication: 'Authorization: Bearer "
                        "dev:<user>' signs <user> in, client X-MS-CLIENT-PRINCIPAL* headers "
                        "are dropped, and WEBSITE_AUTH_ENABLED=True")
    args = parser.parse_args(argv)
    if args.sandbox_history < 1:
        parser.error("--sandbox-history must be at least 1")
    args.app_dir = args.app_dir.resolve()
    configure_logging(verbose=args.verbose)
    os.chdir(args.app_dir)  # as on Azure: functions run in the app folder
    if args.reset_limits:
        return reset_limits(args.app_dir)
    return asyncio.run(serve(args))


def reset_limits(app_dir: Path) -> int:
    try:
        file_values = read_values(app_dir / "local.settings.json") or {}
    except SettingsError as error:
        print(f"Cannot reset the limits: {error}", file=sys.stderr)
        return 1
    return local_store.reset_limits_command(file_values, app_dir)
