"""The parameter checks Twilio makes before creating a message or a call.

Same codes, same order as Twilio (required parameters, then formats, then the
magic-number table), so the app's error handling meets the failures it will meet live.
"""

import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from . import magic
from .errors import TwilioApiError

MAX_BODY = 1600
#: Media a message may carry (https://www.twilio.com/docs/api/errors/21623).
MAX_MEDIA = 10
#: The longest StatusCallback Twilio takes (https://www.twilio.com/docs/api/errors/21609).
MAX_CALLBACK_URL = 4000
_MESSAGING_SERVICE_SID = re.compile(r"MG[0-9a-fA-F]{32}")


def _param(form: Mapping[str, str], name: str) -> str | None:
    """A parameter's value; an empty value counts as missing, as at Twilio."""
    value = form.get(name, "").strip()
    return value or None


def _is_absolute_url(url: str) -> bool:
    """An http(s) URL with a host name: what Twilio calls a fully qualified URL."""
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
    except ValueError:  # unbalanced [ ] in the host, a port beyond 65535
        return False
    return parts.scheme in ("http", "https") and bool(hostname)


def _check_media(media_urls: list[str]) -> None:
    """21623 past ten media (https://www.twilio.com/docs/api/errors/21623); 21620 for a
    malformed one, "typically" one without http:// or https://
    (https://www.twilio.com/docs/api/errors/21620)."""
    if len(media_urls) > MAX_MEDIA:
        raise TwilioApiError(400, 21623, "Number of media files exceeds allowed limit: you may "
                             f"send up to {MAX_MEDIA} media files in a single message.")
    for url in media_urls:
        if not _is_absolute_url(url.strip()):
            raise TwilioApiError(400, 21620, f"Invalid media URL(s): {url}")


def _check_status_callback(url: str | None) -> None:
    """21609 for a StatusCallback that is not a fully qualified http(s) URL, is longer than
    4000 characters, or has an underscore in its host name
    (https://www.twilio.com/docs/api/errors/21609). Twilio also wants it reachable over
    the public Internet, which a local sandbox cannot judge (the app's is localhost)."""
    if url is None:
        return
    if (len(url) > MAX_CALLBACK_URL or not _is_absolute_url(url)
            or "_" in (urlsplit(url).hostname or "")):
        raise TwilioApiError(400, 21609, f"The StatusCallback URL {url} is not a valid URL.")


def validate_message(form: Mapping[str, str], media_urls: list[str],
                     check: magic.Check = magic.check) -> None:
    """Raise what Twilio answers to a Messages.json POST it refuses (``check``: how the
    sandbox's mode decides the numbers, magic.py)."""
    to = _param(form, "To")
    sender = _param(form, "From")
    service = _param(form, "MessagingServiceSid")
    body = form.get("Body", "")
    if to is None:
        raise TwilioApiError(400, 21604, "A 'To' phone number is required.")
    if sender is None and service is None:
        raise TwilioApiError(
            400, 21603, "A 'From' phone number or a 'MessagingServiceSid' is required."
        )
    if not body and not media_urls:
        raise TwilioApiError(400, 21602, "Message body is required.")
    if len(body) > MAX_BODY:
        raise TwilioApiError(
            400, 21617, "The concatenated message body exceeds the 1600 character limit."
        )
    _check_media(media_urls)
    _check_status_callback(_param(form, "StatusCallback"))
    if service is not None and not _MESSAGING_SERVICE_SID.fullmatch(service):
        raise TwilioApiError(400, 21705, f"The Messaging Service Sid {service} is invalid.")
    check("message", sender, to, service)


def validate_call(form: Mapping[str, str], check: magic.Check = magic.check) -> None:
    """Raise what Twilio answers to a Calls.json POST it refuses."""
    to = _param(form, "To")
    sender = _param(form, "From")
    url = _param(form, "Url")
    if to is None:
        raise TwilioApiError(400, 21201, "No 'To' number is specified")
    if sender is None:
        raise TwilioApiError(400, 21213, "No 'From' number is specified")
    if url is None and _param(form, "Twiml") is None and _param(form, "ApplicationSid") is None:
        raise TwilioApiError(400, 21205, "Url parameter is required (or Twiml, or ApplicationSid).")
    if url is not None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise TwilioApiError(400, 21205, f"Url is not a valid URL: {url}")
    method = (_param(form, "Method") or "POST").upper()
    if method not in ("GET", "POST"):
        raise TwilioApiError(400, 21209, f"Method must be GET or POST, not {method}.")
    check("call", sender, to, None)
