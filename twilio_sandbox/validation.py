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
_MESSAGING_SERVICE_SID = re.compile(r"MG[0-9a-fA-F]{32}")


def _param(form: Mapping[str, str], name: str) -> str | None:
    """A parameter's value; an empty value counts as missing, as at Twilio."""
    value = form.get(name, "").strip()
    return value or None


def validate_message(form: Mapping[str, str], media_urls: list[str]) -> None:
    """Raise what Twilio answers to a Messages.json POST it refuses."""
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
    if service is not None and not _MESSAGING_SERVICE_SID.fullmatch(service):
        raise TwilioApiError(400, 21705, f"The Messaging Service Sid {service} is invalid.")
    magic.check("message", sender, to, via=service)


def validate_call(form: Mapping[str, str]) -> None:
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
    magic.check("call", sender, to)
