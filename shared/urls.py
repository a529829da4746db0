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
                 query: dict[str, str] | None = None) -> str:
    """Another function of this app (``twiml``, ``status_callback``), on its public origin.

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
    return f"{url}?{urlencode(query)}" if query else url
