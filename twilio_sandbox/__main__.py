"""Run the sandbox as its own process: ``python -m twilio_sandbox``.

Prints exactly one line on stdout, ``twilio-sandbox listening on <base URL>``, once
it accepts requests (a parent process waits for it); everything else goes to the
log on stderr. Stops cleanly on SIGINT or SIGTERM.
"""

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import signal
import sys

from . import READY_PREFIX
from .events import MAX_SUBSCRIBERS
from .magic import VALID_FROM
from .messaging_services import MessagingService
from .sandbox import DEFAULT_HISTORY, TwilioSandbox
from .simulate import APP_FUNCTIONS

log = logging.getLogger("twilio_sandbox")

READY_LINE = READY_PREFIX + " {url}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m twilio_sandbox",
        description="Local stand-in for the Twilio REST API: nothing real is sent.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind (default 0: a free one)")
    parser.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                        help="bound to loopback, also answer requests for Host NAME (* for any)")
    parser.add_argument("--account-sid", required=True, help="the account SID clients use")
    parser.add_argument("--auth-token", required=True, help="that account's auth token")
    parser.add_argument("--api-key", help="an API key SID (SK...) of that account")
    parser.add_argument("--api-secret", help="the API key's secret")
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds added before every REST answer"
    )
    parser.add_argument(
        "--no-fetch-twiml",
        dest="fetch_twiml",
        action="store_false",
        help="do not fetch a created call's TwiML",
    )
    parser.add_argument(
        "--history", type=int, default=DEFAULT_HISTORY, metavar="N",
        help=f"messages, calls and webhooks kept, each (default {DEFAULT_HISTORY})",
    )
    parser.add_argument(
        "--max-subscribers", type=int, default=MAX_SUBSCRIBERS, metavar="N",
        help=f"live console pages (event streams) served at once (default {MAX_SUBSCRIBERS})",
    )
    parser.add_argument(
        "--app-url", metavar="URL",
        help="the app's origin (http://localhost:7071): the console sends inbound SMS and "
        "calls to URL/api/twiml and drives URL/api/send_sms and make_call",
    )
    parser.add_argument(
        "--no-status-callbacks",
        dest="status_callbacks",
        action="store_false",
        help="send no status callbacks",
    )
    parser.add_argument(
        "--live-like", dest="mode", action="store_const", const="live-like", default="test",
        help="credentials act as live ones: any valid number succeeds as From and To "
        "(default: as test credentials, Twilio's magic numbers decide)",
    )
    parser.add_argument(
        "--messaging-service", metavar="MG...",
        help="the sandbox's number is in this Messaging Service: incoming SMS name it, "
        "opt-outs hold for it, messages sent through it go out from the number",
    )
    parser.add_argument(
        "--advanced-opt-out", action="store_true",
        help="turn on that Messaging Service's Advanced Opt-Out (webhooks carry OptOutType)",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    args = parser.parse_args(argv)
    if (args.api_key is None) != (args.api_secret is None):
        parser.error("--api-key and --api-secret go together")
    if args.latency < 0:
        parser.error("--latency must not be negative")
    if args.history < 1:
        parser.error("--history must be at least 1")
    if args.max_subscribers < 1:
        parser.error("--max-subscribers must be at least 1")
    if args.advanced_opt_out and not args.messaging_service:
        parser.error("--advanced-opt-out needs --messaging-service")
    if args.messaging_service:
        try:
            args.messaging_service = MessagingService.from_json(
                {"sid": args.messaging_service, "numbers": [VALID_FROM],
                 "advanced_opt_out": args.advanced_opt_out})
        except ValueError as error:
            parser.error(f"--messaging-service: {error}")
    return args


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


async def serve(args: argparse.Namespace) -> None:
    """Run until SIGINT/SIGTERM."""
    api_keys = {args.api_key: (args.api_secret, args.account_sid)} if args.api_key else {}
    sandbox = TwilioSandbox(
        accounts={args.account_sid: args.auth_token},
        api_keys=api_keys,
        latency=args.latency,
        fetch_twiml=args.fetch_twiml,
        history=args.history,
        status_callbacks=args.status_callbacks,
        mode=args.mode,
    )
    if args.messaging_service:
        sandbox.add_messaging_service(args.messaging_service)
    sandbox.events.max_subscribers = args.max_subscribers
    if args.app_url:
        origin = args.app_url.rstrip("/")
        sandbox.app.functions = {name: f"{origin}/api/{name}" for name in APP_FUNCTIONS}
    if not _is_loopback(args.host):
        log.warning("binding %s: the /_sandbox controls have no authentication", args.host)
    url = await sandbox.start(args.host, args.port, args.allow_host)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        # Not available on Windows, where Ctrl+C still ends asyncio.run().
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stopping.set)
    print(READY_LINE.format(url=url), flush=True)
    try:
        await stopping.wait()
        log.info("stopping")
    finally:
        await sandbox.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
