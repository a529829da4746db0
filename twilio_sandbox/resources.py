"""Twilio's JSON resources (Message, Call, list pages), field for field.

Field names follow twilio-python's ``MessageInstance`` / ``CallInstance`` so the
library builds its objects from sandbox answers as it does from Twilio's. Stored
resources carry a few sandbox-only keys (:data:`SANDBOX_KEYS`: what the request
sent, what the callee heard) that tests read and the REST answers leave out.
"""

import math
import secrets
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode

import phonenumbers

from .twiml_app import TwimlApp

API_VERSION = "2010-04-01"
#: Keys kept on stored resources for tests, never sent in REST answers.
SANDBOX_KEYS = frozenset({"request", "auth_username", "twiml", "twiml_status", "twiml_type",
                          "heard", "error", "notifications", "application_sid", "actions",
                          "dialed", "recordings"})
#: Parameters Twilio accepts repeated; stored as lists even when sent once.
LIST_PARAMS = frozenset({"MediaUrl", "StatusCallbackEvent"})

Resource = dict[str, Any]

# GSM 03.38 (3GPP TS 23.038): the basic set costs one 7-bit unit, the extension set
# two (an escape, then the character). Twilio sends "in the most compact encoding
# possible", GSM-7 unless the body has "any non GSM-7 characters"
# (https://www.twilio.com/docs/glossary/what-is-ucs-2-character-encoding; GSM-7 itself:
# https://www.twilio.com/docs/glossary/what-is-gsm-7-character-encoding). The two sets
# below are the standard's; that Twilio uses exactly them is not documented by Twilio,
# chosen because GSM-7 is that standard's default alphabet and extension table.
_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = frozenset("^{}\\[~]|€\f")


def new_sid(prefix: str) -> str:
    """A fresh SID: two-letter prefix and 32 hex digits, like Twilio's ("The unique 34
    character id", https://www.twilio.com/docs/usage/api/accounts; Message SIDs match
    ``^(SM|MM)[0-9a-fA-F]{32}$`` in Twilio's OpenAPI description). Lower case is not
    documented by Twilio: chosen because every SID in Twilio's examples is lower case."""
    return prefix + secrets.token_hex(16)


def rfc2822(moment: datetime) -> str:
    """Twilio's date format: ``Wed, 27 Nov 2024 16:28:00 +0000`` ("The RFC 2822 date and
    time in GMT", https://www.twilio.com/docs/messaging/api/message-resource)."""
    return format_datetime(moment.astimezone(UTC))


def now() -> datetime:
    return datetime.now(UTC)


def account_path(account_sid: str) -> str:
    return f"/{API_VERSION}/Accounts/{account_sid}"


def formatted(number: str | None) -> str | None:
    """A number as Twilio's ``to_formatted`` / ``from_formatted`` show it: "Formatted for
    display" (https://www.twilio.com/docs/voice/api/call-resource). Which format is not
    documented by Twilio: national format chosen because it is the display form a
    phone shows for a number of its own country (libphonenumber's NATIONAL)."""
    if not number:
        return number
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return number
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)


def num_segments(body: str) -> int:
    """How many SMS segments carry ``body`` (GSM-7 when it fits, else UCS-2).

    One segment holds 160 GSM-7 or 70 UCS-2 characters; a longer message is split into
    segments of 153 or 67, because "Twilio prepends a User Data Header of 6 Bytes"
    (https://www.twilio.com/docs/glossary/what-is-ucs-2-character-encoding,
    https://www.twilio.com/docs/glossary/what-sms-character-limit). UCS-2 counts UTF-16
    code units, so a character beyond the Basic Multilingual Plane (most emoji) takes two:
    UCS-2 represents only that plane (same UCS-2 page); that Twilio then counts a
    surrogate pair as two is not documented by Twilio, chosen because that is what the
    pair occupies in the 140-octet segment.
    """
    if all(ch in _GSM_BASIC or ch in _GSM_EXTENDED for ch in body):
        units = sum(2 if ch in _GSM_EXTENDED else 1 for ch in body)
        single, multi = 160, 153
    else:
        units = len(body.encode("utf-16-le")) // 2
        single, multi = 70, 67
    return 1 if units <= single else math.ceil(units / multi)


def request_snapshot(form: Iterable[tuple[str, str]]) -> dict[str, str | list[str]]:
    # Sandbox-only (tests read what the client sent); nothing of Twilio's to cite.
    """What the client sent: one value per parameter, a list when repeated or list-typed."""
    grouped: dict[str, list[str]] = {}
    for key, value in form:
        grouped.setdefault(key, []).append(value)
    return {
        key: values if key in LIST_PARAMS or len(values) > 1 else values[0]
        for key, values in grouped.items()
    }


def media_path(account_sid: str, message_sid: str, media_sid: str) -> str:
    """A Media resource's URL path, without extension: where its content is fetched
    (https://www.twilio.com/docs/messaging/api/media-resource)."""
    return f"{account_path(account_sid)}/Messages/{message_sid}/Media/{media_sid}"


def media_resource(account_sid: str, message_sid: str, media_sid: str, content_type: str,
                   created: datetime) -> Resource:
    """A Media resource as Twilio answers its fetch (OpenAPI
    ``api.v2010.account.message.media``)."""
    stamp = rfc2822(created)
    return {
        "account_sid": account_sid,
        "content_type": content_type,
        "date_created": stamp,
        "date_updated": stamp,
        "parent_sid": message_sid,
        "sid": media_sid,
        "uri": f"{media_path(account_sid, message_sid, media_sid)}.json",
    }


def with_media_sid(message: Resource) -> Resource:
    """The message under an ``MM`` SID, as one carrying media: Twilio's OpenAPI description
    writes Message SIDs ``^(SM|MM)``. Which messages Twilio gives ``MM`` is not documented;
    the sandbox gives it to those received with media."""
    old, sid = message["sid"], "MM" + message["sid"][2:]
    message.update(sid=sid, uri=message["uri"].replace(old, sid), subresource_uris={
        name: uri.replace(old, sid) for name, uri in message["subresource_uris"].items()})
    return message


def build_message(
    account_sid: str, form: Mapping[str, str], media_urls: list[str], snapshot: dict[str, Any]
) -> Resource:
    """A Message resource as Twilio answers a successful create.

    Fields as in https://www.twilio.com/docs/messaging/api/message-resource (and
    twilio-python's ``MessageInstance``): ``direction`` ``outbound-api`` "for messages
    created by the REST API"; ``num_segments`` and ``num_media`` are strings; for a
    Messaging Service "num_segments is initially 0, since a sender hasn't yet been
    assigned" (same page). The first status is ``queued``, or ``accepted`` through a
    Messaging Service
    (https://www.twilio.com/docs/messaging/guides/outbound-message-status-in-status-callbacks).
    ``price_unit`` ``USD`` is not documented by Twilio as a default: chosen because
    Twilio's example answers show it.
    """
    sid = new_sid("SM")
    stamp = rfc2822(now())
    uri = f"{account_path(account_sid)}/Messages/{sid}.json"
    service = form.get("MessagingServiceSid") or None
    body = form.get("Body", "")
    return {
        "account_sid": account_sid,
        "api_version": API_VERSION,
        "body": body,
        "date_created": stamp,
        "date_sent": None,
        "date_updated": stamp,
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": form.get("From") or None,
        "messaging_service_sid": service,
        "num_media": str(len(media_urls)),
        # A Messaging Service counts segments once it has chosen the sender (status_callbacks).
        "num_segments": "0" if service else str(num_segments(body)),
        "price": None,
        "price_unit": "USD",
        "sid": sid,
        "status": "accepted" if service else "queued",
        "subresource_uris": {
            "media": f"{account_path(account_sid)}/Messages/{sid}/Media.json",
            "feedback": f"{account_path(account_sid)}/Messages/{sid}/Feedback.json",
        },
        "to": form["To"],
        "uri": uri,
        "request": snapshot,
    }


#: What a Calls create ignores when it names an ApplicationSid: the TwiML App's own Voice
#: URL and StatusCallback apply (OpenAPI, POST /2010-04-01/Accounts/{AccountSid}/Calls.json:
#: "If an application_sid parameter is present, this parameter is ignored").
APPLICATION_IGNORES = ("Url", "Method", "Twiml", "FallbackUrl", "FallbackMethod",
                       "StatusCallback", "StatusCallbackEvent", "StatusCallbackMethod")


def build_call(account_sid: str, form: Mapping[str, str], snapshot: dict[str, Any],
               app: TwimlApp | None = None) -> Resource:
    """A Call resource as Twilio answers a successful create (status ``queued``).

    Fields and sub-resources as in https://www.twilio.com/docs/voice/api/call-resource
    (and twilio-python's ``CallInstance``); a call created through the REST API starts
    ``queued`` (the "Call Status values" there) with ``direction`` ``outbound-api``.
    ``queue_time`` ``"0"`` is not documented by Twilio as a starting value: chosen
    because the sandbox queues nothing.

    Its ``request`` is what Twilio acts on: the request itself, or for a call handled by
    the TwiML App ``app`` the request with the app's Voice URL and StatusCallback in place
    of the ones Twilio ignores.
    """
    if app is not None:
        snapshot = {key: value for key, value in snapshot.items()
                    if key not in APPLICATION_IGNORES}
        snapshot.update(Url=app.voice_url, Method="POST")
        if app.status_callback:
            snapshot["StatusCallback"] = app.status_callback
    sid = new_sid("CA")
    stamp = rfc2822(now())
    base = f"{account_path(account_sid)}/Calls/{sid}"
    subresources = (
        "notifications", "recordings", "payments", "events", "siprec", "streams",
        "transcriptions", "user_defined_message_subscriptions", "user_defined_messages",
    )  # fmt: skip
    return {
        "account_sid": account_sid,
        "annotation": None,
        "answered_by": None,
        "api_version": API_VERSION,
        "caller_name": None,
        "date_created": stamp,
        "date_updated": stamp,
        "direction": "outbound-api",
        "duration": None,
        "end_time": None,
        "forwarded_from": None,
        "from": form["From"],
        "from_formatted": formatted(form["From"]),
        "group_sid": None,
        "parent_call_sid": None,
        "phone_number_sid": None,
        "price": None,
        "price_unit": "USD",
        "queue_time": "0",
        "sid": sid,
        "start_time": None,
        "status": "queued",
        "stir_verstat": None,
        "subresource_uris": {name: f"{base}/{name}.json" for name in subresources},
        "to": form["To"],
        "to_formatted": formatted(form["To"]),
        "trunk_sid": None,
        "uri": f"{base}.json",
        "request": snapshot,
        "twiml": None,
        "twiml_status": None,
        "twiml_type": None,
        "heard": [],
        "error": None,
        # What Twilio's debugger would log for the call (warnings: the call goes on).
        "notifications": [],
        # A Voice SDK call's: its TwiML App, and what its TwiML did.
        "application_sid": app.sid if app is not None else None,
        "actions": [],
        "dialed": [],
        # What its <Record> verbs left: sid, duration, transcription (call_flow.py).
        "recordings": [],
    }


def public(resource: Resource) -> Resource:
    """The resource as Twilio's REST API shows it (sandbox-only keys removed)."""
    return {key: value for key, value in resource.items() if key not in SANDBOX_KEYS}


def page(
    key: str, items: list[Resource], path: str, filters: Mapping[str, str], number: int, size: int,
    start: int | None = None, token: str | None = None,
) -> dict[str, Any]:
    """One page of a list answer in Twilio's shape; ``items`` already newest first.

    The paging fields (``uri``, ``first_page_uri``, ``next_page_uri``,
    ``previous_page_uri``, ``page``, ``page_size``, ``start``, ``end``) are those of
    "Twilio API responses" (https://www.twilio.com/docs/usage/twilios-response) and the
    list properties on https://www.twilio.com/docs/messaging/api/message-resource.
    Newest first is not documented by Twilio on the pages cited: chosen because a
    message history is read from its latest message.

    ``start`` is where the page begins (default ``number`` x ``size``); the next and
    previous pages are named by a ``PageToken``, ``PA`` + the last SID read or ``PB`` +
    the first, as Twilio names them (see listing.py).
    """

    def uri(page_number: int, page_token: str | None = None) -> str:
        query = {**filters, "PageSize": size, "Page": page_number}
        if page_token:
            query["PageToken"] = page_token
        return f"{path}?{urlencode(query)}"

    start = number * size if start is None else start
    chunk = items[start : start + size]
    has_next = start + size < len(items)
    return {
        key: [public(item) for item in chunk],
        "end": start + max(len(chunk) - 1, 0),
        "first_page_uri": uri(0),
        "next_page_uri": uri(number + 1, f"PA{chunk[-1]['sid']}") if has_next and chunk
        else None,
        "page": number,
        "page_size": size,
        "previous_page_uri": uri(max(number - 1, 0), f"PB{chunk[0]['sid']}")
        if start > 0 and chunk else None,
        "start": start,
        "uri": uri(number, token),
    }
