"""App settings: declared once here, read from the environment.

Every setting the app reads has exactly one declaration in ``DECLARATIONS``:
its name, meaning, whether it is required, its default and its parser. The
settings table in docs/settings.md is generated from it (tests/settings_doc.py),
and it and ``local.settings.json.example`` are checked against it by the
tests; the errors raised here name the setting, never its value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import phonenumbers

from shared.logs import logger
from shared.phone import NumberError, canonical
from shared.problems import misconfigured


class SettingError(Exception):
    """A required setting is missing or a setting cannot be parsed."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"App setting {name} {reason}")
        self.name = name
        self.reason = reason


def _sid(prefix: str) -> Callable[[str], str]:
    pattern = re.compile(rf"{prefix}[0-9a-fA-F]{{32}}")

    def parse(raw: str) -> str:
        if not pattern.fullmatch(raw):
            raise ValueError(f"must be '{prefix}' followed by 32 hexadecimal characters")
        return raw

    return parse


def _secret(raw: str) -> str:
    return raw


def _text(raw: str) -> str:
    return raw


def _e164(raw: str) -> str:
    """The number in the one spelling requests and webhooks are compared in."""
    try:
        return canonical(raw)
    except NumberError:
        raise ValueError("must be a phone number in E.164 form, like +14155552671") from None


def _e164_list(raw: str) -> frozenset[str] | None:
    try:
        numbers = {canonical(number.strip()) for number in raw.split(",") if number.strip()}
    except NumberError:
        raise ValueError("must be phone numbers in E.164 form separated by commas, "
                         "like +14155550100,+14155550101") from None
    return frozenset(numbers) or None


def _origin(raw: str) -> str:
    absolute = "must be an absolute http(s) URL such as https://contoso.azurewebsites.net"
    try:
        parts = urlsplit(raw)
    except ValueError:  # unbalanced [ ] in the host
        raise ValueError(absolute) from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(absolute)
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError("must not carry credentials, a query or a fragment")
    return raw.rstrip("/")


def _public_origin(raw: str) -> str:
    origin = _origin(raw)
    # Status callbacks are built on it, and Twilio refuses a StatusCallback whose host has
    # an underscore (https://www.twilio.com/docs/api/errors/21609): every send would fail.
    if "_" in (urlsplit(origin).hostname or ""):
        raise ValueError("must have no underscore in its host name: Twilio refuses such a "
                         "StatusCallback URL (error 21609)")
    return origin


# Host names that are loopback as written (urlsplit's hostname drops the [ ] of [::1]).
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def _api_origin(raw: str) -> str:
    origin = _origin(raw)
    parts = urlsplit(origin)
    if parts.scheme != "https" and parts.hostname not in LOOPBACK_HOSTS:
        raise ValueError("must be https (plain http only on loopback): it carries the credentials")
    return origin


def _hostname(raw: str) -> str:
    if not _HOSTNAME.fullmatch(raw):
        raise ValueError("must be a host name with an optional port")
    return raw.lower()


#: A Voice SDK client identity as Twilio takes it in tokens and ``client:`` addresses:
#: the mobile SDKs' letters, digits and underscores, well inside Twilio's client-name rule
#: (no space, control, delimiter or "unwise" character, at most 256 characters:
#: https://www.twilio.com/docs/api/errors/31105; tests/test_fidelity_calls.py holds it).
CLIENT_IDENTITY = re.compile(r"[A-Za-z0-9_]{1,121}")
#: How a signed-in user's identity starts (``shared.client_identity``).
SIGNED_IN_PREFIX = "user_3a"
#: Twilio refuses access tokens valid for longer than 24 hours.
MAX_TOKEN_TTL = 86400
_HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(:[0-9]{1,5})?")
_GUID = re.compile(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


def _connection_string(raw: str) -> str:
    """An Azure Storage connection string (or ``UseDevelopmentStorage=true``), unparsed.

    Only its shape is checked here; the message never repeats it (it holds the key).
    """
    if raw.lower() == "usedevelopmentstorage=true":
        return raw
    keys = {part.split("=", 1)[0].strip().lower() for part in raw.split(";") if "=" in part}
    if not keys & {"tableendpoint", "accountname"}:
        raise ValueError("must be a storage connection string with AccountName or "
                         "TableEndpoint (or UseDevelopmentStorage=true)")
    return raw


def _service_origin(service: str) -> Callable[[str], str]:
    """A storage service's URI (``table``, ``queue``): an origin, https off loopback."""
    def parse(raw: str) -> str:
        uri = _api_origin(raw)
        if urlsplit(uri).path not in ("", "/"):
            raise ValueError(f"must be the {service} service's origin, like "
                             f"https://<account>.{service}.core.windows.net")
        return uri

    return parse


_service_uri = _service_origin("table")


def _client_id(raw: str) -> str:
    if not _GUID.fullmatch(raw):
        raise ValueError("must be the managed identity's client ID (a GUID)")
    return raw


def _credential(raw: str) -> str:
    if raw.lower() != "managedidentity":
        raise ValueError("must be managedidentity (or unset)")
    return raw.lower()


def _countries(raw: str) -> frozenset[str] | None:
    codes = {code.strip().upper() for code in raw.split(",") if code.strip()}
    supported = phonenumbers.SUPPORTED_REGIONS
    unknown = sorted(code for code in codes if code not in supported)
    if unknown:
        raise ValueError("must be ISO 3166 alpha-2 codes separated by commas, like US,CA,FR")
    return frozenset(codes) or None


def _client_identity_or_user(raw: str) -> str:
    if not CLIENT_IDENTITY.fullmatch(raw):
        raise ValueError("must be 1 to 121 ASCII letters, digits or underscores")
    return raw


def _client_identity(raw: str) -> str:
    """An identity of its own: never one a signed-in user's could be."""
    if _client_identity_or_user(raw).startswith(SIGNED_IN_PREFIX):
        raise ValueError(f"must not start with {SIGNED_IN_PREFIX} (signed-in users' identities do)")
    return raw


def _whole(low: int, high: int, unit: str) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        if not raw.isascii() or not raw.isdecimal() or not low <= int(raw) <= high:
            raise ValueError(f"must be a whole number of {unit} from {low} to {high}")
        return int(raw)

    return parse


def _flag(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise ValueError("must be true or false")


def _count(raw: str) -> int:
    if not (raw.isascii() and raw.isdecimal()) or int(raw) > 1_000_000:
        raise ValueError("must be a whole number from 0 (no limit) to 1000000")
    return int(raw)


def _store_failure(raw: str) -> str:
    if raw.lower() not in ("refuse", "allow"):
        raise ValueError("must be refuse or allow")
    return raw.lower()


#: ``SMS_REPLY_ATTRIBUTION``'s rules (``shared.conversations``).
REPLY_ATTRIBUTIONS = ("last-sender", "recent-sender")
#: ``SMS_UNASSIGNED_OWNER`` for the callers without a signed-in user.
ANONYMOUS_READER = "anonymous"
# A signed-in user as <provider>:<user id>: the first ':' ends the provider.
_READER = re.compile(r"([\x21-\x39\x3b-\x7e]{1,256}):([\x21-\x7e]{1,256})")


def _attribution(raw: str) -> str:
    if raw.lower() not in REPLY_ATTRIBUTIONS:
        raise ValueError("must be " + " or ".join(REPLY_ATTRIBUTIONS))
    return raw.lower()


def _reader(raw: str) -> str:
    """``anonymous``, or ``<provider>:<user id>`` with the provider lower-cased as Easy
    Auth's is (``shared.identity``)."""
    if raw.lower() == ANONYMOUS_READER:
        return ANONYMOUS_READER
    match = _READER.fullmatch(raw)
    if match is None:
        raise ValueError("must be a signed-in user as <provider>:<user id> (like "
                         "aad:0c3b4f2e-...), or anonymous")
    provider, user_id = match.groups()
    return f"{provider.lower()}:{user_id}"


def _seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("must be a number of seconds") from None
    if not 0 < value <= 220:  # Azure's front end ends HTTP requests at 230 s
        raise ValueError("must be more than 0 and at most 220 seconds")
    return value


def _days(raw: str) -> int:
    if not (raw.isascii() and raw.isdecimal()) or not 1 <= int(raw) <= 3650:
        raise ValueError("must be a whole number of days from 1 to 3650")
    return int(raw)


#: ``VOICEMAIL_GREETING``'s default.
DEFAULT_GREETING = ("The person you are calling is not available. Please leave a message "
                    "after the tone.")
#: The longest recording Twilio transcribes (https://www.twilio.com/docs/voice/twiml/record).
MAX_TRANSCRIBED = 120
#: A recording's WAV as Twilio serves it: 8 kHz, 16-bit, one channel (``<Record>`` records
#: one: RecordingChannels=1, https://www.twilio.com/docs/voice/twiml/record), and its header.
WAV_BYTES_PER_SECOND = 16_000
WAV_HEADER_BYTES = 44


def _greeting(raw: str) -> str:
    if len(raw) > 1000:
        raise ValueError("must be at most 1000 characters")
    return raw


def _audio_url(raw: str) -> str:
    refusal = "must be an https URL Twilio can fetch, without credentials"
    try:
        parts = urlsplit(raw)
        host = parts.hostname
    except ValueError:  # unbalanced [ ] in the host
        raise ValueError(refusal) from None
    if (parts.scheme != "https" or not host or parts.username is not None
            or len(raw) > 2048 or any(char.isspace() for char in raw)):
        raise ValueError(refusal)
    return raw


def _voice(raw: str) -> str:
    from shared.voice import voice_refusal  # shared.voice reads requests: no cycle at import

    reason = voice_refusal(raw, None)
    if reason is not None:
        raise ValueError(reason[1])
    return raw


def _language(raw: str) -> str:
    from shared.voice import voice_refusal

    reason = voice_refusal(None, raw)
    if reason is not None:
        raise ValueError(reason[1])
    return raw


@dataclass(frozen=True)
class Declaration:
    """One app setting: the single source of its name, meaning and parsing."""

    name: str
    field: str
    meaning: str
    parse: Callable[[str], Any]
    required: bool = False
    default: str | None = None
    # What local.settings.json.example suggests, where the safe choice is not the default.
    example: str | None = None


def _preview(raw: str) -> str:
    if raw.lower() not in PUSH_PREVIEWS:
        raise ValueError("must be " + ", ".join(PUSH_PREVIEWS[:-1]) + " or " + PUSH_PREVIEWS[-1])
    return raw.lower()


def _hub_name(raw: str) -> str:
    # Notification Hubs' naming rule (Microsoft.NotificationHubs resource name rules):
    # 1-260 characters, alphanumerics, periods, hyphens and underscores, starting and
    # ending with a letter or digit.
    if not _HUB_NAME.fullmatch(raw):
        raise ValueError("must be the hub's name: letters, digits, '.', '-' and '_', "
                         "starting and ending with a letter or digit")
    return raw


#: ``PUSH_PREVIEW``'s choices (``shared.push``): how much a push shows on the lock screen.
PUSH_PREVIEWS = ("none", "sender", "body")
_HUB_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,258}[A-Za-z0-9])?")


def _connection_declarations(prefix: str, field: str, meaning: str) -> tuple[Declaration, ...]:
    """A storage connection's settings, named as Azure Functions names them.

    Either ``<prefix>`` (a connection string) or the identity-based
    ``<prefix>__tableServiceUri`` with ``__credential``/``__clientId``.
    """
    return (
        Declaration(prefix, field, meaning, _connection_string),
        Declaration(
            f"{prefix}__tableServiceUri", f"{field}_table_uri",
            f"Identity-based `{prefix}`: the table service URI "
            "(`https://<account>.table.core.windows.net`), reached with the app's managed "
            "identity (`azure-identity`) instead of a key.",
            _service_uri,
        ),
        Declaration(
            f"{prefix}__credential", f"{field}_credential",
            f"With `{prefix}__tableServiceUri`: `managedidentity`. Unset: any credential "
            "`DefaultAzureCredential` finds (a developer's `az login`).",
            _credential,
        ),
        Declaration(
            f"{prefix}__clientId", f"{field}_client_id",
            f"With `{prefix}__tableServiceUri`: client ID of the user-assigned managed "
            "identity to use.",
            _client_id,
        ),
    )


DECLARATIONS: tuple[Declaration, ...] = (
    Declaration(
        "TWILIO_ACCOUNT_SID", "account_sid",
        "Twilio account SID (`AC...`): the account every call and message is made on.",
        _sid("AC"), required=True,
    ),
    Declaration(
        "TWILIO_AUTH_TOKEN", "auth_token",
        "Auth token of that account: checks Twilio's webhook signatures; "
        "REST credential unless an API key is set.",
        _secret, required=True,
    ),
    Declaration(
        "TWILIO_API_KEY_SID", "api_key_sid",
        "API key SID (`SK...`): preferred REST credential, set together with "
        "`TWILIO_API_KEY_SECRET`.",
        _sid("SK"),
    ),
    Declaration(
        "TWILIO_API_KEY_SECRET", "api_key_secret",
        "Secret of that API key.",
        _secret,
    ),
    Declaration(
        "TWILIO_FROM_NUMBER", "from_number",
        "Default caller ID and SMS sender (E.164), used when a request gives no `from`.",
        _e164,
    ),
    Declaration(
        "TWILIO_MESSAGING_SERVICE_SID", "messaging_service_sid",
        "Messaging Service (`MG...`) that sends SMS when a request gives no `from`; "
        "takes precedence over `TWILIO_FROM_NUMBER` for SMS.",
        _sid("MG"),
    ),
    Declaration(
        "ALLOWED_FROM_NUMBERS", "allowed_from_numbers",
        "E.164 numbers (`+14155550100,+14155550101`) a request's `from` may choose as "
        "caller ID or SMS sender, over the default. Unset: a `from` must be the default "
        "sender (`TWILIO_FROM_NUMBER`; for SMS with a Messaging Service, none).",
        _e164_list,
    ),
    Declaration(
        "PUBLIC_BASE_URL", "public_base_url",
        "Public origin of the app (`https://calls.contoso.com`), optionally with the path "
        "prefix a proxy adds: builds the TwiML URL for calls and the URL Twilio signed. "
        "Unset: `https://` + `WEBSITE_HOSTNAME`.",
        _public_origin,
    ),
    Declaration(
        "WEBSITE_HOSTNAME", "azure_hostname",
        "Set by Azure: the app's default host name (`contoso.azurewebsites.net`), the public "
        "origin when `PUBLIC_BASE_URL` is unset. Leave unset locally: the request's own "
        "origin is then used, only when its host is `localhost`, `127.0.0.1` or `[::1]`.",
        _hostname,
    ),
    Declaration(
        "ALLOWED_COUNTRIES", "allowed_countries",
        "ISO 3166 alpha-2 codes (`US,CA,FR`) that calls and SMS may go to. Unset: any "
        "country, with a warning logged at start-up.",
        _countries, example="US,CA",
    ),
    Declaration(
        "ALLOW_PREMIUM_NUMBERS", "allow_premium_numbers",
        "Allow premium-rate, shared-cost, personal (outside +1) and non-geographic "
        "(satellite, global service) destinations.",
        _flag, default="false",
    ),
    Declaration(
        "TWILIO_VALIDATE_SIGNATURE", "validate_signature",
        "Refuse `twiml` requests without a valid `X-Twilio-Signature`.",
        _flag, default="true",
    ),
    Declaration(
        "TWILIO_API_BASE_URL", "api_base_url",
        "Origin every Twilio REST request goes to (local sandboxes, tests, mocks).",
        _api_origin, default="https://api.twilio.com",
    ),
    Declaration(
        "TWILIO_TIMEOUT_SECONDS", "timeout_seconds",
        "Timeout of each Twilio REST request, in seconds.",
        _seconds, default="10",
    ),
    Declaration(
        "MEDIA_MAX_BYTES", "media_max_bytes",
        "Largest media file (of an incoming MMS) `media` passes on from Twilio, in bytes "
        "(1024 to 104857600); a larger one is refused with 502 `media-too-large`. The "
        "default, 5 MB, is what Twilio takes for all the media of a message it sends.",
        _whole(1024, 104857600, "bytes"), default="5242880",
    ),
    Declaration(
        "SMS_REPLY_MESSAGE", "sms_reply_message",
        "Reply sent to incoming SMS that reach `twiml` (not to STOP, START or HELP, which "
        "Twilio answers). Unset: no reply.",
        _text,
    ),
    Declaration(
        "MESSAGE_RETENTION_DAYS", "message_retention_days",
        "Days the SMS of conversations (bodies included, both ways) are kept: older ones are "
        "never shown and are deleted (docs/storage.md).",
        _days, default="30",
    ),
    Declaration(
        "SMS_REPLY_ATTRIBUTION", "sms_reply_attribution",
        "Whose conversation an incoming SMS joins (docs/storage.md). `last-sender`: the user "
        "who last texted its sender from the number (else the Messaging Service) it wrote "
        "to, within `MESSAGE_RETENTION_DAYS`. Right for a single-user app, or a team that "
        "shares its contacts: any user who texts a contact takes over its replies. "
        "`recent-sender`: the one user who texted it from there within "
        "`SMS_REPLY_WINDOW_HOURS`; if nobody or several users did, the reply goes to "
        "`SMS_UNASSIGNED_OWNER`. Right when users must not read each other's replies: "
        "texting another user's contact makes its replies unassigned, never yours.",
        _attribution, default="last-sender",
    ),
    Declaration(
        "SMS_REPLY_WINDOW_HOURS", "sms_reply_window_hours",
        "With `recent-sender`: for how many hours a text claims its recipient's replies "
        "(1 to 87600; `MESSAGE_RETENTION_DAYS` bounds it too).",
        _whole(1, 87600, "hours"), default="72",
    ),
    Declaration(
        "SMS_UNASSIGNED_OWNER", "sms_unassigned_owner",
        "Who reads the incoming SMS no user's text claims: a signed-in user as "
        "`<provider>:<user id>` (`aad:0c3b4f2e-...`, as App Service Authentication names "
        "them), or `anonymous` in an app without sign-in (refused while App Service "
        "Authentication is on: anyone holding the function key would read them; a user "
        "while it is off is warned of at start-up: nobody can be them). Unset: "
        "they are kept for nobody, and counted in the log.",
        _reader,
    ),
    *_connection_declarations(
        "STATE_STORAGE", "state_storage",
        "Storage the app keeps delivery status in (Table Storage), by Azure Functions' "
        "connection conventions: a connection string (`UseDevelopmentStorage=true` for the "
        "local emulator). Unset: `AzureWebJobsStorage`.",
    ),
    *_connection_declarations(
        "AzureWebJobsStorage", "webjobs_storage",
        "The function app's own storage (set by Azure), used for delivery status when no "
        "`STATE_STORAGE*` setting is given. Neither set: delivery status is off.",
    ),
    Declaration(
        "AzureWebJobsStorage__queueServiceUri", "webjobs_storage_queue_uri",
        "Identity-based `AzureWebJobsStorage`: the queue service URI "
        "(`https://<account>.queue.core.windows.net`) where push events wait for "
        "`push_notify`, reached with `AzureWebJobsStorage__credential`/`__clientId`.",
        _service_origin("queue"),
    ),
    Declaration(
        "WEBSITE_AUTH_ENABLED", "website_auth_enabled",
        "Set by Azure to `True` when App Service Authentication is on: only then are its "
        "`X-MS-CLIENT-PRINCIPAL*` headers trusted as the caller's identity. Leave unset locally "
        "(`python -m devhost --auth` emulates it).",
        _flag,
    ),
    Declaration(
        "REQUIRE_SIGNED_IN_USER", "require_signed_in_user",
        "Answer 401 `sign-in-required` to the mobile app's functions (`make_call`, "
        "`send_sms`, `status`, `conversations`, `media`, `voice_token`) without a signed-in user "
        "(App Service Authentication); docs/security.md says what each one does.",
        _flag, default="false",
    ),
    Declaration(
        "RATE_LIMIT_SMS_PER_CALLER", "rate_limit_sms_per_caller",
        "SMS one caller (the signed-in user, else the client IP) may send per hour "
        "(`0`: no limit).",
        _count, default="30",
    ),
    Declaration(
        "RATE_LIMIT_CALLS_PER_CALLER", "rate_limit_calls_per_caller",
        "Calls one caller (the signed-in user, else the client IP) may place per hour "
        "(`0`: no limit).",
        _count, default="10",
    ),
    Declaration(
        "RATE_LIMIT_PER_DESTINATION", "rate_limit_per_destination",
        "Calls and SMS to one number per day (UTC), all callers together (`0`: no limit).",
        _count, default="10",
    ),
    Declaration(
        "RATE_LIMIT_PER_COUNTRY", "rate_limit_per_country",
        "Calls and SMS to one destination country per hour, all callers together "
        "(`0`: no limit).",
        _count, default="200",
    ),
    Declaration(
        "RATE_LIMIT_PER_ACCOUNT", "rate_limit_per_account",
        "Calls and SMS per day (UTC) on the whole account: the budget ceiling (`0`: no limit).",
        _count, default="1000",
    ),
    Declaration(
        "RATE_LIMIT_STORE_FAILURE", "rate_limit_store_failure",
        "When the store cannot count a request: `refuse` it (503, nothing sent) or `allow` it "
        "uncounted (logged).",
        _store_failure, default="refuse",
    ),
    Declaration(
        "TWILIO_TWIML_APP_SID", "twiml_app_sid",
        "TwiML App (`AP...`) whose Voice URL is this app's `voice`: the outgoing application "
        "of the Voice SDK tokens `voice_token` answers. Unset: `voice_token` answers 500.",
        _sid("AP"),
    ),
    Declaration(
        "TWILIO_PUSH_CREDENTIAL_SID", "push_credential_sid",
        "Push credential (`CR...`, APNs or FCM) that wakes the mobile app for an incoming "
        "call. Unset: incoming calls ring only while the app is open.",
        _sid("CR"),
    ),
    Declaration(
        "VOICE_TOKEN_TTL_SECONDS", "voice_token_ttl",
        "How long a Voice SDK token is valid, in seconds (60 to 86400, Twilio's 24 hours).",
        _whole(60, MAX_TOKEN_TTL, "seconds"), default="3600",
    ),
    Declaration(
        "VOICE_SINGLE_USER_IDENTITY", "voice_single_user_identity",
        "Voice SDK identity (letters, digits, `_`) of a caller without a signed-in user, for "
        "single-user setups. Unset: `voice_token` answers 401 to them.",
        _client_identity,
    ),
    Declaration(
        "VOICE_INCOMING_IDENTITY", "voice_incoming_identity",
        "Voice SDK identity that calls to the Twilio number ring (as `voice_token` answered "
        "it). Unset: callers hear that the number takes no calls.",
        _client_identity_or_user,
    ),
    Declaration(
        "VOICE_ALLOW_CLIENT_TO_CLIENT", "voice_allow_client_to_client",
        "Let an app user call another app user (`To=client:<identity>`) through `voice`.",
        _flag, default="false",
    ),
    Declaration(
        "VOICE_ROUTE_TO_CONTACT", "voice_route_to_contact",
        "Ring a call to the Twilio number on the app user who last exchanged an SMS or a "
        "call with the caller from that number, by `SMS_REPLY_ATTRIBUTION`'s rule and "
        "cutoff. `false`, or nobody claims the caller: `VOICE_INCOMING_IDENTITY`.",
        _flag, default="true",
    ),
    Declaration(
        "VOICE_RING_SECONDS", "voice_ring_seconds",
        "How long an incoming call rings the app user before voicemail answers (`<Dial "
        "timeout>`, 5 to 600 seconds; Twilio adds about 5).",
        _whole(5, 600, "seconds"), default="25",
    ),
    Declaration(
        "VOICEMAIL_ENABLED", "voicemail_enabled",
        "Take a voicemail from callers nobody answers, or nobody could be rung for. "
        "`false`: they hear that the number takes no calls.",
        _flag, default="true",
    ),
    Declaration(
        "VOICEMAIL_GREETING", "voicemail_greeting",
        "What a caller hears before leaving a voicemail, spoken in `VOICEMAIL_VOICE` (at "
        "most 1000 characters).",
        _greeting, default=DEFAULT_GREETING,
    ),
    Declaration(
        "VOICEMAIL_GREETING_URL", "voicemail_greeting_url",
        "An https audio file (MP3 or WAV) played as the greeting instead of "
        "`VOICEMAIL_GREETING` (`<Play>`).",
        _audio_url,
    ),
    Declaration(
        "VOICEMAIL_VOICE", "voicemail_voice",
        "Voice of the spoken greeting: `man`, `woman`, or a `Polly.` or `Google.` voice, as "
        "`make_call`'s `voice` takes them.",
        _voice, default="woman",
    ),
    Declaration(
        "VOICEMAIL_LANGUAGE", "voicemail_language",
        "Language of the spoken greeting (`en-US`, `fr-FR`), as `make_call`'s `language`. "
        "Unset: Twilio's default for the voice.",
        _language,
    ),
    Declaration(
        "VOICEMAIL_MAX_SECONDS", "voicemail_max_seconds",
        "Longest voicemail, in seconds (1 to 3600; at most 120 with "
        "`VOICEMAIL_TRANSCRIBE`, the longest recording Twilio transcribes). `media` "
        "passes a recording on as WAV (16,000 bytes a second), so its length must fit "
        "in `MEDIA_MAX_BYTES` (the default 5 MB: 327 seconds).",
        _whole(1, 3600, "seconds"), default="120",
    ),
    Declaration(
        "VOICEMAIL_TRANSCRIBE", "voicemail_transcribe",
        "Ask Twilio for a text transcription of each voicemail (`<Record transcribe>`): "
        "billed per transcription, American English only, recordings of 2 to 120 seconds. "
        "Off by default: it costs money and fails for other languages; the recording is "
        "kept either way.",
        _flag, default="false",
    ),
    Declaration(
        "RATE_LIMIT_VOICE_TOKENS_PER_CALLER", "rate_limit_voice_tokens_per_caller",
        "Voice SDK tokens one caller (the signed-in user, else the client IP) may get per "
        "hour (`0`: no limit). In-app calls count as calls (`RATE_LIMIT_CALLS_PER_CALLER`).",
        _count, default="60",
    ),
    Declaration(
        "RATE_LIMIT_MEDIA_PER_CALLER", "rate_limit_media_per_caller",
        "Incoming MMS files one caller (the signed-in user, else the client IP) may fetch "
        "through `media` per hour (`0`: no limit): each is two requests to Twilio and a "
        "download.",
        _count, default="300",
    ),
    Declaration(
        "RATE_LIMIT_DEVICES_PER_CALLER", "rate_limit_devices_per_caller",
        "Device registrations and removals one caller (the signed-in user, else the client "
        "IP) may make through `devices` per hour (`0`: no limit): each is two requests to "
        "Notification Hubs, which throttles per namespace and caps the Free tier at 500 "
        "devices. An app registers at each launch.",
        _count, default="20",
    ),
    Declaration(
        "NOTIFICATION_HUBS_CONNECTION", "notification_hubs_connection",
        "Azure Notification Hubs connection string of a hub-level rule with Listen and Send "
        "(`Endpoint=sb://<namespace>.servicebus.windows.net/;SharedAccessKeyName=...;"
        "SharedAccessKey=...`): push notifications to the mobile app. Unset (or "
        "`NOTIFICATION_HUBS_HUB` unset): push is off and `devices` answers 503.",
        _secret,
    ),
    Declaration(
        "NOTIFICATION_HUBS_HUB", "notification_hubs_hub",
        "Name of the notification hub in that namespace; set with "
        "`NOTIFICATION_HUBS_CONNECTION`.",
        _hub_name,
    ),
    Declaration(
        "PUSH_PREVIEW", "push_preview",
        "What a push shows on the lock screen: `none` (only what happened: \"New message\"), "
        "`sender` (and the number) or `body` (and the start of the text). Whatever it "
        "shows passes through Notification Hubs, Apple and Google.",
        _preview, default="none",
    ),
    Declaration(
        "AZURE_FUNCTIONS_ENVIRONMENT", "functions_environment",
        "Set by the Functions host: the runtime environment, `Production` on Azure unless set; "
        "`python -m devhost` sets `Development`, as Core Tools does. In `Development` a 429 "
        "also says how to reset the rate limits locally.",
        _text,
    ),
)


@dataclass(frozen=True)
class StorageConnection:
    """One storage connection, by Azure Functions' conventions: a connection string, or a
    table service URI reached with a managed identity (``client_id`` for a user-assigned one).
    ``setting`` names it in errors."""

    setting: str
    connection_string: str | None
    table_service_uri: str | None
    credential: str | None = None
    client_id: str | None = None


@dataclass(frozen=True)
class QueueConnection:
    """Where the app's queues are: a connection string, or a queue service URI reached with
    a managed identity (``client_id`` for a user-assigned one). ``setting`` names it."""

    setting: str
    connection_string: str | None
    queue_service_uri: str | None = None
    credential: str | None = None
    client_id: str | None = None


@dataclass(frozen=True)
class Settings:
    """The parsed app settings; one attribute per declaration's ``field``."""

    account_sid: str
    auth_token: str
    api_key_sid: str | None
    api_key_secret: str | None
    from_number: str | None
    messaging_service_sid: str | None
    allowed_from_numbers: frozenset[str] | None
    public_base_url: str | None
    azure_hostname: str | None
    allowed_countries: frozenset[str] | None
    allow_premium_numbers: bool
    validate_signature: bool
    api_base_url: str
    timeout_seconds: float
    media_max_bytes: int
    sms_reply_message: str | None
    message_retention_days: int
    sms_reply_attribution: str
    sms_reply_window_hours: int
    sms_unassigned_owner: str | None
    state_storage: str | None
    state_storage_table_uri: str | None
    state_storage_credential: str | None
    state_storage_client_id: str | None
    webjobs_storage: str | None
    webjobs_storage_table_uri: str | None
    webjobs_storage_credential: str | None
    webjobs_storage_client_id: str | None
    webjobs_storage_queue_uri: str | None
    website_auth_enabled: bool | None
    require_signed_in_user: bool
    rate_limit_sms_per_caller: int
    rate_limit_calls_per_caller: int
    rate_limit_per_destination: int
    rate_limit_per_country: int
    rate_limit_per_account: int
    rate_limit_store_failure: str
    twiml_app_sid: str | None
    push_credential_sid: str | None
    voice_token_ttl: int
    voice_single_user_identity: str | None
    voice_incoming_identity: str | None
    voice_allow_client_to_client: bool
    voice_route_to_contact: bool
    voice_ring_seconds: int
    voicemail_enabled: bool
    voicemail_greeting: str
    voicemail_greeting_url: str | None
    voicemail_voice: str
    voicemail_language: str | None
    voicemail_max_seconds: int
    voicemail_transcribe: bool
    rate_limit_voice_tokens_per_caller: int
    rate_limit_media_per_caller: int
    rate_limit_devices_per_caller: int
    notification_hubs_connection: str | None
    notification_hubs_hub: str | None
    push_preview: str
    functions_environment: str | None

    @property
    def development(self) -> bool:
        """Run by a local host (devhost, Core Tools): Azure runs the app as ``Production``.

        Environment names compare without regard to case, as the Functions host's do.
        """
        return (self.functions_environment or "").lower() == "development"

    @property
    def easy_auth(self) -> bool:
        """Whether App Service Authentication fronts the app (and strips forged headers)."""
        return bool(self.website_auth_enabled)

    @property
    def state_connection(self) -> StorageConnection | None:
        """Where delivery status is kept: ``STATE_STORAGE*``, else ``AzureWebJobsStorage*``."""
        for name, field in (("STATE_STORAGE", "state_storage"),
                            ("AzureWebJobsStorage", "webjobs_storage")):
            connection = StorageConnection(
                name, getattr(self, field), getattr(self, f"{field}_table_uri"),
                getattr(self, f"{field}_credential"), getattr(self, f"{field}_client_id"))
            if connection.connection_string or connection.table_service_uri:
                return connection
        return None

    @property
    def queue_connection(self) -> QueueConnection | None:
        """Where push events are queued: ``AzureWebJobsStorage``, the connection
        ``push_notify``'s trigger reads (a connection string, or its identity-based
        ``__queueServiceUri``); else a ``STATE_STORAGE`` connection string (a local run
        keeps one storage account for both)."""
        if self.webjobs_storage:
            return QueueConnection("AzureWebJobsStorage", self.webjobs_storage)
        if self.webjobs_storage_queue_uri:
            return QueueConnection("AzureWebJobsStorage", None, self.webjobs_storage_queue_uri,
                                   self.webjobs_storage_credential,
                                   self.webjobs_storage_client_id)
        if self.state_storage and not self.webjobs_storage_table_uri:
            return QueueConnection("STATE_STORAGE", self.state_storage)
        return None

    @property
    def push_on(self) -> bool:
        """Push notifications are configured: a hub, and a queue for their events."""
        return bool(self.notification_hubs_connection and self.notification_hubs_hub
                    and self.queue_connection is not None)

    @property
    def public_origin(self) -> str | None:
        """Where Twilio reaches the app; None only off Azure (the local host).

        Never taken from the request: a client choosing the Host header would
        otherwise choose where Twilio fetches a call's TwiML.
        """
        if self.public_base_url:
            return self.public_base_url
        return f"https://{self.azure_hostname}" if self.azure_hostname else None


@cache
def app_settings() -> Settings:
    """The process's settings, parsed once: Azure restarts the worker when app settings change.

    A bad setting is the operator's problem: a 500 naming it, raised again on
    every request (failures are not cached). Parsed once, the settings warn
    once per process about a missing ``ALLOWED_COUNTRIES``.
    """
    try:
        settings = load_settings()
    except SettingError as error:
        raise misconfigured(error.name, error.reason) from None
    if settings.allowed_countries is None:
        logger.warning(
            "ALLOWED_COUNTRIES is not set: calls and SMS may go to any country, high-cost "
            "destinations sharing +1 included (Jamaica +1 876, Dominican Republic +1 809); "
            "set it to the countries your users are in")
    if settings.state_connection is None:
        logger.warning(
            "no storage connection (STATE_STORAGE or AzureWebJobsStorage): rate limits, "
            "Idempotency-Key and delivery status are off")
    if settings.require_signed_in_user and not settings.easy_auth:
        logger.warning(  # infra/ turns both on: Azure should have set WEBSITE_AUTH_ENABLED
            "REQUIRE_SIGNED_IN_USER is true but WEBSITE_AUTH_ENABLED is not: App Service "
            "Authentication looks off, so every request that needs a user gets 401 "
            "sign-in-required (docs/deploy.md, 'Checks after deploying')")
    if not settings.push_on:
        logger.info(  # said once: app_settings is parsed once per process
            "push notifications are off: %s", "no queue for their events (AzureWebJobsStorage)"
            if settings.notification_hubs_connection else
            "NOTIFICATION_HUBS_CONNECTION and NOTIFICATION_HUBS_HUB are not set")
    owner = settings.sms_unassigned_owner
    if owner not in (None, ANONYMOUS_READER) and not settings.easy_auth:
        logger.warning(  # nobody is then signed in, so nobody is that user
            "SMS_UNASSIGNED_OWNER names a signed-in user but WEBSITE_AUTH_ENABLED is not set: "
            "App Service Authentication looks off, so no caller is that user and the "
            "unclaimed replies filed for them are read by nobody")
    return settings


# Azure hands the app a Key Vault reference's own text when it cannot read the
# secret (missing secret, missing role): never use that text as a credential.
UNRESOLVED_KEY_VAULT_REFERENCE = "@Microsoft.KeyVault("


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Parse the declared settings from ``environ`` (default: the process environment).

    Raises ``SettingError`` naming the first missing or malformed setting.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for declaration in DECLARATIONS:
        raw = env.get(declaration.name)
        text = raw.strip() if raw is not None else ""
        if not text:
            if declaration.required:
                raise SettingError(declaration.name, "is required but not set")
            text = declaration.default or ""
        if text.startswith(UNRESOLVED_KEY_VAULT_REFERENCE):
            raise SettingError(declaration.name, "is a Key Vault reference Azure could not "
                               "resolve: check that the secret exists and that the app's "
                               "identity may read it (Key Vault Secrets User)")
        try:
            values[declaration.field] = declaration.parse(text) if text else None
        except ValueError as error:
            raise SettingError(declaration.name, str(error)) from None
    if (values["api_key_sid"] is None) != (values["api_key_secret"] is None):
        missing = "TWILIO_API_KEY_SID" if values["api_key_sid"] is None else "TWILIO_API_KEY_SECRET"
        raise SettingError(missing, "is required when the other API key setting is set")
    _check_hub(values["notification_hubs_connection"], values["notification_hubs_hub"])
    if values["sms_unassigned_owner"] == ANONYMOUS_READER and values["website_auth_enabled"]:
        raise SettingError("SMS_UNASSIGNED_OWNER", "is anonymous while App Service "
                           "Authentication is on: anyone holding the function key would read "
                           "the replies; name a signed-in user (<provider>:<user id>)")
    _check_voicemail(values)
    return Settings(**values)


def _check_voicemail(values: dict[str, Any]) -> None:
    """Settings Twilio would take but not honour: a recording too long to transcribe, a
    Google voice with another language than its own (warning 13511: silence); and a
    recording too long for ``media`` to pass on."""
    from shared.voice import voice_refusal

    if values["voicemail_transcribe"] and values["voicemail_max_seconds"] > MAX_TRANSCRIBED:
        raise SettingError("VOICEMAIL_MAX_SECONDS", f"must be at most {MAX_TRANSCRIBED} while "
                           "VOICEMAIL_TRANSCRIBE is on: Twilio transcribes no longer recordings")
    longest = values["media_max_bytes"] - WAV_HEADER_BYTES
    seconds = values["voicemail_max_seconds"]
    if values["voicemail_enabled"] and seconds * WAV_BYTES_PER_SECOND > longest:
        raise SettingError("VOICEMAIL_MAX_SECONDS", f"must be at most "
                           f"{longest // WAV_BYTES_PER_SECOND} with MEDIA_MAX_BYTES "
                           f"{values['media_max_bytes']}: media passes a recording on as WAV "
                           f"({WAV_BYTES_PER_SECOND} bytes a second), and refuses a larger "
                           "one; raise MEDIA_MAX_BYTES or lower VOICEMAIL_MAX_SECONDS")
    reason = voice_refusal(values["voicemail_voice"], values["voicemail_language"])
    if reason is not None:
        raise SettingError("VOICEMAIL_LANGUAGE", reason[1])


def _check_hub(connection: str | None, hub: str | None) -> None:
    """Both Notification Hubs settings or neither, and a connection string that parses
    (its text is never repeated: it holds the key)."""
    if (connection is None) != (hub is None):
        missing = "NOTIFICATION_HUBS_HUB" if hub is None else "NOTIFICATION_HUBS_CONNECTION"
        raise SettingError(missing, "is required when the other Notification Hubs setting "
                           "is set")
    if connection is not None:
        from shared.notification_hubs import parse_connection  # only when push is on

        try:
            parse_connection(connection)
        except ValueError as error:
            raise SettingError("NOTIFICATION_HUBS_CONNECTION", str(error)) from None
