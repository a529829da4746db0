"""The parameter checks Twilio makes before creating a message or a call.

Same codes as Twilio (each cited where it is raised), so the app's error handling meets
the failures it will meet live. The order (required parameters, then formats, then the
magic-number table) is not documented by Twilio: chosen because a request missing a
parameter cannot be judged on its values, and the test-credentials table decides the
numbers last (https://www.twilio.com/docs/iam/test-credentials).
"""

import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from . import magic
from .errors import TwilioApiError
from .twiml_app import TwimlApp

#: "The ``Body`` parameter for an outgoing message can be up to 1,600 characters"
#: (https://www.twilio.com/docs/api/errors/21617).
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
    # https://www.twilio.com/docs/api/errors/21604: "'To' phone number is not specified".
    if to is None:
        raise TwilioApiError(400, 21604, "A 'To' phone number is required.")
    # https://www.twilio.com/docs/api/errors/21603: a From "or Messaging Service SID" is
    # needed, "either instead of or in addition to a specific 'From' parameter".
    if sender is None and service is None:
        raise TwilioApiError(
            400, 21603, "A 'From' phone number or a 'MessagingServiceSid' is required."
        )
    # https://www.twilio.com/docs/api/errors/21602: "The Body OR MediaURL parameter is
    # required to send a Message".
    if not body and not media_urls:
        raise TwilioApiError(400, 21602, "Message body is required.")
    # https://www.twilio.com/docs/api/errors/21617: a Body "longer than 1,600 characters".
    # Counted in Python characters (code points); the page warns that non-GSM-7
    # characters "can use more space", which Twilio does not quantify, so not modelled.
    if len(body) > MAX_BODY:
        raise TwilioApiError(
            400, 21617, "The concatenated message body exceeds the 1600 character limit."
        )
    _check_media(media_urls)
    _check_status_callback(_param(form, "StatusCallback"))
    # https://www.twilio.com/docs/api/errors/21705: "The MessagingServiceSid provided
    # with the request does not match a valid Sid pattern(MGxxx)".
    if service is not None and not _MESSAGING_SERVICE_SID.fullmatch(service):
        raise TwilioApiError(400, 21705, f"The Messaging Service Sid {service} is invalid.")
    check("message", sender, to, service)


def validate_call(form: Mapping[str, str], check: magic.Check = magic.check) -> None:
    """Raise what Twilio answers to a Calls.json POST it refuses."""
    to = _param(form, "To")
    sender = _param(form, "From")
    url = _param(form, "Url")
    # https://www.twilio.com/docs/api/errors/21201: "you did not specify what number to
    # call in the 'To' POST parameter".
    if to is None:
        raise TwilioApiError(400, 21201, "No 'To' number is specified")
    # https://www.twilio.com/docs/api/errors/21213: "you forgot to include a 'From'
    # parameter. The 'From' parameter is required".
    if sender is None:
        raise TwilioApiError(400, 21213, "No 'From' number is specified")
    # Url, Twiml or ApplicationSid: one is required. Twilio's page for 21200 lists "The
    # request did not include url, twiml, or applicationSid" among its causes
    # (https://www.twilio.com/docs/api/errors/21200); 21205 is for a URL that "was not a
    # valid URL".
    if url is None and _param(form, "Twiml") is None and _param(form, "ApplicationSid") is None:
        raise TwilioApiError(400, 21200, "Url parameter is required (or Twiml, or ApplicationSid).")
    # https://www.twilio.com/docs/api/errors/21205: "a fully qualified URL including:
    # protocol (http:// or https://) [and] hostname".
    if url is not None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise TwilioApiError(400, 21205, f"Url is not a valid URL: {url}")
    # https://www.twilio.com/docs/api/errors/21209: "Possible values are GET and POST".
    # Whether Twilio takes ``get`` is not documented by Twilio; chosen leniently (upper-
    # cased) so that only a method that is neither GET nor POST meets 21209.
    method = (_param(form, "Method") or "POST").upper()
    if method not in ("GET", "POST"):
        raise TwilioApiError(400, 21209, f"Method must be GET or POST, not {method}.")
    _check_call_options(form)
    check("call", sender, to, None)


# --- the Calls.json options Twilio honours ----------------------------------------------
# OpenAPI, POST /2010-04-01/Accounts/{AccountSid}/Calls.json, and the error pages cited.

#: The events a call may report, one StatusCallbackEvent parameter each (call_enum_event).
CALL_EVENTS = frozenset({"initiated", "ringing", "answered", "completed"})
#: How long Twilio lets a call ring by default, and at most (``Timeout``).
DEFAULT_TIMEOUT = 60
MAX_TIMEOUT = 600
MACHINE_DETECTION = frozenset({"Enable", "DetectMessageEnd"})
#: Inline ``Twiml``: "Max 4000 characters" (https://www.twilio.com/docs/api/errors/32018).
MAX_TWIML = 4000
_APPLICATION_SID = re.compile(r"AP[0-9a-fA-F]{32}")
_WHOLE = re.compile(r"[0-9]{1,9}")


def _all(form: Mapping[str, str], name: str) -> list[str]:
    """Every value of a repeated parameter (a plain mapping holds one)."""
    getall = getattr(form, "getall", None)
    if getall is not None:
        return list(getall(name, []))
    return [form[name]] if name in form else []


def _check_call_options(form: Mapping[str, str]) -> None:
    """The options' formats. 21626 for a StatusCallbackEvent that is not one event: each
    goes in a parameter of its own, so ``initiated ringing`` in one is invalid
    (https://www.twilio.com/docs/api/errors/21626); 21200 for a FallbackUrl, a method or
    a MachineDetection Twilio cannot use (https://www.twilio.com/docs/api/errors/21200);
    21208 for a Timeout that is no positive whole number
    (https://www.twilio.com/docs/api/errors/21208); 32018 for a Twiml over 4000 characters."""
    for event in _all(form, "StatusCallbackEvent"):
        if event not in CALL_EVENTS:
            raise TwilioApiError(400, 21626, f"Invalid 'StatusCallbackEvent': {event!r} (one "
                                 "of initiated, ringing, answered, completed per parameter)")
    for name in ("FallbackMethod", "StatusCallbackMethod"):
        if (_param(form, name) or "POST").upper() not in ("GET", "POST"):
            raise TwilioApiError(400, 21200, f"{name} must be GET or POST.")
    fallback = _param(form, "FallbackUrl")
    if fallback is not None:
        parts = urlsplit(fallback)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise TwilioApiError(400, 21200, f"FallbackUrl is not a valid URL: {fallback}")
    timeout = _param(form, "Timeout")
    if timeout is not None and not (_WHOLE.fullmatch(timeout) and int(timeout) > 0):
        raise TwilioApiError(400, 21208, "Timeout must be a positive whole number of seconds.")
    detection = _param(form, "MachineDetection")
    if detection is not None and detection not in MACHINE_DETECTION:
        raise TwilioApiError(400, 21200, "MachineDetection must be Enable or DetectMessageEnd.")
    if len(form.get("Twiml", "")) > MAX_TWIML:
        raise TwilioApiError(400, 32018, "Twiml size exceeded maximum allowed value of "
                             f"{MAX_TWIML} characters")


def call_timeout(request: Mapping[str, object]) -> int:
    """Seconds a call rings before Twilio gives up: ``Timeout``, 60 by default, 600 at most
    (OpenAPI: "the maximum is 600 seconds")."""
    value = request.get("Timeout")
    if isinstance(value, list):
        value = value[0] if value else None
    if not isinstance(value, str) or not _WHOLE.fullmatch(value.strip()):
        return DEFAULT_TIMEOUT
    return min(int(value), MAX_TIMEOUT)


def application(form: Mapping[str, str], apps: Mapping[str, TwimlApp],
                account_sid: str) -> TwimlApp | None:
    """The TwiML App an ``ApplicationSid`` call names, or None without one; 21218 for one
    the account does not have (https://www.twilio.com/docs/api/errors/21218)."""
    sid = _param(form, "ApplicationSid")
    if sid is None:
        return None
    app = apps.get(sid) if _APPLICATION_SID.fullmatch(sid) else None
    if app is None or app.account_sid != account_sid:
        raise TwilioApiError(400, 21218, f"Invalid ApplicationSid: {sid}")
    return app
