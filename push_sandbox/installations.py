"""Installations: what a device registers, validated as Notification Hubs does.

https://learn.microsoft.com/en-us/rest/api/notificationhubs/create-overwrite-installation:
``installationId``, ``platform`` and ``pushChannel`` are required; ``tags``,
``userId`` and ``templates`` (name -> ``{body, headers, tags}``) optional; a PUT
replaces the whole installation. Platforms this double plays: ``apns`` and
``fcmv1`` (FCM v1; the Node SDK's ``models/installation.ts`` names them so).
``gcm`` is FCM's legacy API, retired in June 2024
(https://learn.microsoft.com/en-us/azure/notification-hubs/firebase-migration-rest):
refused, as are the other platforms the app does not use.

https://learn.microsoft.com/en-us/rest/api/notificationhubs/update-installation:
a PATCH is a JSON-Patch array of ``add``, ``remove`` and ``replace`` operations
(``/pushChannel``, ``/userId``, ``/tags``, ``/tags/{tag}``, ``/templates/{name}``).
"""

from __future__ import annotations

import copy
import re
from typing import Any

from .errors import HubError
from .tags import check_tags

PLATFORMS = ("apns", "fcmv1")
LEGACY = {"gcm": "gcm is FCM's legacy API, retired in June 2024: use fcmv1"}
ID = re.compile(r"[^\s/?#%]{1,256}")
APNS_TOKEN = re.compile(r"[0-9A-Fa-f]{32,200}")
FCM_TOKEN = re.compile(r"[^\s]{1,4096}")
#: The fields an installation may have (others are refused, not silently kept).
FIELDS = frozenset({"installationId", "platform", "pushChannel", "tags", "userId", "templates",
                    "expirationTime", "pushChannelExpired"})
MAX_TEMPLATES = 10
MAX_TEMPLATE_BYTES = 8 * 1024


def validate(body: Any, installation_id: str) -> dict[str, Any]:
    """The installation ``body`` describes, normalized, or HubError 400."""
    if not isinstance(body, dict):
        raise HubError(400, "The installation must be a JSON object.")
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise HubError(400, f"Unknown installation field(s): {', '.join(unknown)[:200]}.")
    if body.get("installationId") != installation_id:
        raise HubError(400, "installationId is required and must match the URI's.")
    platform = body.get("platform")
    if not isinstance(platform, str):
        raise HubError(400, "platform is required: apns or fcmv1.")
    platform = platform.lower()
    if platform in LEGACY:
        raise HubError(400, f"platform: {LEGACY[platform]}.")
    if platform not in PLATFORMS:
        raise HubError(400, f"platform {platform[:20]!r}: this double plays apns and fcmv1.")
    channel = body.get("pushChannel")
    pattern = APNS_TOKEN if platform == "apns" else FCM_TOKEN
    if not isinstance(channel, str) or not pattern.fullmatch(channel):
        shape = "a hexadecimal APNs device token" if platform == "apns" else "an FCM token"
        raise HubError(400, f"pushChannel is required: {shape}.")
    installation: dict[str, Any] = {"installationId": installation_id, "platform": platform,
                                    "pushChannel": channel,
                                    "tags": check_tags(body.get("tags"))}
    user_id = body.get("userId")
    if user_id is not None:
        if not isinstance(user_id, str) or not ID.fullmatch(user_id):
            raise HubError(400, "userId must be a string of up to 256 characters.")
        installation["userId"] = user_id
    templates = body.get("templates")
    if templates is not None:
        installation["templates"] = _templates(templates)
    return installation


def _templates(templates: Any) -> dict[str, Any]:
    if not isinstance(templates, dict) or len(templates) > MAX_TEMPLATES:
        raise HubError(400, f"templates must be an object of at most {MAX_TEMPLATES} templates.")
    kept: dict[str, Any] = {}
    for name, template in templates.items():
        if not ID.fullmatch(name) or not isinstance(template, dict):
            raise HubError(400, "Each template is named and an object with a body.")
        body, headers = template.get("body"), template.get("headers") or {}
        if not isinstance(body, str) or not body or len(body.encode()) > MAX_TEMPLATE_BYTES:
            raise HubError(400, f"templates.{name[:40]}.body must be text of up to "
                                f"{MAX_TEMPLATE_BYTES} bytes.")
        if not isinstance(headers, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
            raise HubError(400, f"templates.{name[:40]}.headers must map names to text.")
        kept[name] = {"body": body, "headers": headers,
                      "tags": check_tags(template.get("tags"), f"templates.{name[:40]}.tags")}
    return kept


def patch(installation: dict[str, Any], operations: Any) -> dict[str, Any]:
    """``installation`` with the JSON-Patch ``operations`` applied, validated again."""
    if not isinstance(operations, list) or not operations:
        raise HubError(400, "A PATCH body is a JSON array of operations.")
    changed = {name: value for name, value in copy.deepcopy(installation).items()
               if name in FIELDS}  # not what the double adds (lastUpdate)
    for operation in operations:
        _apply(changed, operation)
    return validate(changed, installation["installationId"])


def _apply(installation: dict[str, Any], operation: Any) -> None:
    if not isinstance(operation, dict) or operation.get("op") not in ("add", "remove", "replace"):
        raise HubError(400, "Each operation is {op: add|remove|replace, path, value?}.")
    op, path, value = operation["op"], operation.get("path"), operation.get("value")
    if not isinstance(path, str) or not path.startswith("/"):
        raise HubError(400, "Each operation names a path such as /tags or /pushChannel.")
    field, _, item = path[1:].partition("/")
    if field in ("pushChannel", "userId") and not item:
        if op == "remove":
            installation.pop(field, None)
        else:
            installation[field] = value
    elif field == "tags":
        tags: list[Any] = installation.setdefault("tags", [])
        if op == "remove":
            installation["tags"] = [tag for tag in tags if item and tag != item]
        elif op == "replace" or isinstance(value, list):
            installation["tags"] = list(value) if isinstance(value, list) else [value]
        elif value not in tags:
            tags.append(value)
    elif field == "templates" and item:
        templates = installation.setdefault("templates", {})
        if op == "remove":
            templates.pop(item, None)
        else:
            templates[item] = value
    else:
        raise HubError(400, f"The path {path[:80]!r} cannot be patched.")
