"""The app's public origin: where Twilio reaches it, for call TwiML URLs and signed URLs.

It is configured (``PUBLIC_BASE_URL``, else Azure's ``WEBSITE_HOSTNAME``).
Without either, only a request whose host is a loopback literal may lend its
own origin (the developer's machine): a client's ``Host`` header must never
choose where Twilio fetches a call's TwiML, and a DNS-rebound page must not
steer a local app holding real credentials.
"""

from __future__ import annotations

from urllib.parse import SplitResult

from shared.problems import misconfigured
from shared.settings import LOOPBACK_HOSTS, Settings


def is_loopback(parts: SplitResult) -> bool:
    """True when the URL's host is written as a loopback literal (no name resolution)."""
    return parts.scheme in ("http", "https") and parts.hostname in LOOPBACK_HOSTS


def app_origin(parts: SplitResult, settings: Settings) -> str:
    """The origin Twilio reaches the app on, for a request whose URL is ``parts``.

    Raises ``ValueError`` when the request's port is not one from 1 to 65535 (a
    malformed ``Host`` header: a URL built on it names a port nobody can reach),
    and 500 ``misconfigured`` naming ``PUBLIC_BASE_URL`` when no origin is
    configured and the request's host is not a loopback literal.
    """
    if parts.port == 0:  # .port itself raises ValueError beyond 65535
        raise ValueError("port 0 is not a port a client can reach")
    if settings.public_origin:
        return settings.public_origin
    if is_loopback(parts):
        return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
    raise misconfigured("PUBLIC_BASE_URL", "is required: the request's host is not a loopback "
                        "address, and the app never takes its public origin from a client's "
                        "Host header")
