"""What Notification Hubs hands each device's push service for one send.

- ``apple`` (https://learn.microsoft.com/en-us/rest/api/notificationhubs/send-apple-native-notification):
  the body is the APNs payload (a JSON object, ``aps`` and custom keys), sent as
  is to ``apns`` devices, with the ``apns-*`` request headers passed on
  (https://learn.microsoft.com/en-us/azure/notification-hubs/push-notification-updates-ios-13).
- ``fcmv1`` (https://learn.microsoft.com/en-us/rest/api/notificationhubs/send-fcm-native-notification,
  https://learn.microsoft.com/en-us/azure/notification-hubs/firebase-migration-rest):
  the body is ``{"message": {...}}``; each ``fcmv1`` device gets that ``message``
  addressed to its token (FCM v1's ``message.token``); ``data`` maps text to text.
- ``template`` (https://learn.microsoft.com/en-us/azure/notification-hubs/notification-hubs-templates-cross-platform-push-messages):
  the body is an object of text properties; each template of each matching
  device is expanded, ``$(name)`` by the property's value (JSON-escaped, as
  it stands inside a JSON string) and ``#(name)`` by it as is (a number), and
  sent as that device's platform's payload; "property names are not
  case-sensitive" (the page's expression table). The templates page's ``{...}``
  expressions and ``.(name)`` are not played.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Literal

from .errors import HubError

Format = Literal["apple", "fcmv1", "template"]
#: Which platform each native format reaches.
NATIVE = {"apple": "apns", "fcmv1": "fcmv1"}
APNS_HEADERS = ("apns-push-type", "apns-priority", "apns-expiration", "apns-collapse-id",
                "apns-topic")
_PROPERTY = re.compile(r"([$#])\(([A-Za-z0-9_.\-]{1,64})\)")


def parse_body(kind: Format, body: bytes) -> dict[str, Any]:
    """The send's JSON object, checked for its format, or HubError 400."""
    try:
        document = json.loads(body)
    except ValueError:
        raise HubError(400, "The notification body is not JSON.") from None
    if not isinstance(document, dict):
        raise HubError(400, "The notification body must be a JSON object.")
    if kind == "fcmv1":
        message = document.get("message")
        if not isinstance(message, dict):
            raise HubError(400, 'An fcmv1 notification is {"message": {...}}.')
        data = message.get("data")
        if data is not None and not (isinstance(data, dict) and all(
                isinstance(value, str) for value in data.values())):
            raise HubError(400, "message.data maps names to text only (FCM v1).")
    if kind == "template" and not all(isinstance(value, str) for value in document.values()):
        raise HubError(400, "A template notification's properties are all text.")
    return document


def native(kind: Format, document: Mapping[str, Any], channel: str) -> dict[str, Any]:
    """The payload a device of ``kind``'s platform with push channel ``channel`` receives."""
    if kind == "fcmv1":
        return {**document["message"], "token": channel}
    return dict(document)


def expand(template: str, properties: Mapping[str, str]) -> str:
    """The template's body with the send's properties in it (missing ones: empty; names
    matched whatever their case)."""
    folded = {name.casefold(): text for name, text in properties.items()}

    def value(found: re.Match[str]) -> str:
        text = folded.get(found.group(2).casefold(), "")
        return json.dumps(text)[1:-1] if found.group(1) == "$" else text
    return _PROPERTY.sub(value, template)


def from_template(platform: str, template: Mapping[str, Any], properties: Mapping[str, str],
                  channel: str) -> dict[str, Any] | None:
    """What a device of ``platform`` gets from one of its templates; None if the expanded
    body is no payload of its platform (Notification Hubs drops that device's push)."""
    try:
        document = json.loads(expand(template["body"], properties))
    except ValueError:
        return None
    if not isinstance(document, dict):
        return None
    if platform == "fcmv1":
        message = document.get("message")
        return {**message, "token": channel} if isinstance(message, dict) else None
    return document


def apns_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The APNs headers of the request that Notification Hubs passes on."""
    return {name: headers[name] for name in APNS_HEADERS if name in headers}
