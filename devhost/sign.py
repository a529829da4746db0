"""``python -m devhost.sign URL [-d NAME=VALUE ...]``: a curl that Twilio could have sent.

Prints a ``curl`` for a twiml URL with the ``X-Twilio-Signature`` Twilio would
compute with the account's auth token (GET, or a form POST with ``-d``), so a
webhook can be tried by hand against the local host. The token comes from
``--auth-token``, else ``TWILIO_AUTH_TOKEN`` in the environment, else the app's
local.settings.json. Sign the URL exactly as you will send it: the host name
is part of what is signed (``make run`` prints ``localhost`` URLs).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from twilio.request_validator import RequestValidator

from devhost.settings_file import SettingsError, read_values

TOKEN_SETTING = "TWILIO_AUTH_TOKEN"  # noqa: S105 - the setting's name


def signed_curl(url: str, auth_token: str, form: Sequence[tuple[str, str]] = ()) -> str:
    """A ready-to-paste curl for ``url`` (a form POST when ``form`` is given), signed."""
    signature = RequestValidator(auth_token).compute_signature(url, dict(form))
    words = ["curl", shlex.quote(url), "-H", shlex.quote(f"X-Twilio-Signature: {signature}")]
    for name, value in form:
        words += ["--data-urlencode", shlex.quote(f"{name}={value}")]
    return " ".join(words)


def _field(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not equals or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devhost.sign",
        description="Print a curl for a twiml URL carrying the X-Twilio-Signature Twilio "
        "would send, signed with the account's auth token.",
    )
    parser.add_argument("url", help="the full URL, as you will send it (host name included)")
    parser.add_argument(
        "-d", "--data", type=_field, action="append", default=[], metavar="NAME=VALUE",
        help="a form field: the request becomes a form POST (repeat for more fields)",
    )
    parser.add_argument(
        "--auth-token",
        help=f"the token to sign with (default: {TOKEN_SETTING} from the environment, "
        "else from APP_DIR/local.settings.json)",
    )
    parser.add_argument("--app-dir", type=Path, default=Path(), help="app folder (default: .)")
    args = parser.parse_args(argv)
    token = args.auth_token or os.environ.get(TOKEN_SETTING)
    if not token:
        try:
            token = (read_values(args.app_dir / "local.settings.json") or {}).get(TOKEN_SETTING)
        except SettingsError as error:
            parser.error(str(error))
    if not token:
        parser.error(
            f"no auth token: pass --auth-token (make run prints the sandbox's), or set "
            f"{TOKEN_SETTING} in the environment or local.settings.json"
        )
    print(signed_curl(args.url, token, args.data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
