"""Checking URLs a client hands us to pass on to Twilio (media, audio to play)."""

from __future__ import annotations

from urllib.parse import urlsplit

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
