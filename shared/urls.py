"""URLs: checking those a client hands us for Twilio (media, audio to play), and
building those of this app's own functions that Twilio calls back."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import urlencode, urlsplit

from shared.origin import app_origin
from shared.problems import invalid_request

if TYPE_CHECKING:
    from shared.settings import Settings

MAX_URL = 2048
# Twilio's connection overrides, in the fragment of a URL the app gives Twilio: Twilio
# reads them, then requests and signs the URL without them, so the app never sees them
# and validates the URL it received, as before (RequestValidator strips no fragment)
# (https://www.twilio.com/docs/usage/webhooks/webhooks-connection-overrides). Without
# them Twilio retries once, on a failed connection only.
#: Status callbacks: retried up to 3 times on a 5xx (the store briefly down: 503), no
#: connection, or no answer, within Twilio's 15 s; recording one is idempotent. Why
#: these timeouts: docs/storage.md, "When a status callback fails".
STATUS_CALLBACK_OVERRIDES = "rc=3&rp=5xx,ct,rt&ct=2000&rt=6000"
#: A call's TwiML, fetched while the callee listens: once more on a 5xx (a front end
#: restarting) as on a failed connection; the answer depends on the URL alone.
TWIML_OVERRIDES = "rp=5xx,ct"


def is_public_url(text: str, schemes: tuple[str, ...] = ("https",)) -> bool:
    """An absolute URL Twilio can fetch: given scheme, a host, no credentials or spaces."""
    if len(text) > MAX_URL or any(char.isspace() for char in text):
        return False
    try:
        parts = urlsplit(text)
        hostname = parts.hostname
    except ValueError:  # a malformed host: unbalanced [ ], or characters NFKC makes delimiters
        return False
    return (parts.scheme in schemes and bool(hostname)
            and parts.username is None and parts.password is None)


def function_url(request_url: str, settings: Settings, function: str,
                 query: dict[str, str] | None = None, overrides: str | None = None) -> str:
    """Another function of this app (``twiml``, ``status_callback``), on its public origin,
    with Twilio's connection ``overrides`` as its fragment.

    The route prefix comes from this request's path (``/api/make_call`` ->
    ``/api/twiml``); the origin from the settings, never from a client's Host
    header (``shared.origin``).
    """
    try:
        parts = urlsplit(request_url)
        origin = app_origin(parts, settings)
    except ValueError:  # a malformed Host header (unbalanced [ ], a port over 65535) got here
        raise invalid_request("the request URL cannot be parsed") from None
    path = re.sub("/{2,}", "/", parts.path).rstrip("/")  # /api/make_call/ routes here too
    url = f"{origin}{path.rsplit('/', 1)[0]}/{function}"
    url = f"{url}?{urlencode(query)}" if query else url
    return f"{url}#{overrides}" if overrides else url
