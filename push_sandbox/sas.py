"""Shared Access Signature tokens, checked as Notification Hubs checks them.

A request carries ``Authorization: SharedAccessSignature sr=<url-encoded
resource URI>&sig=<url-encoded base64 HMAC>&se=<unix expiry>&skn=<rule name>``;
the signature is HMAC-SHA256, keyed by the rule's key (its UTF-8 bytes), of
``<sr as sent>\\n<se>``
(https://learn.microsoft.com/en-us/rest/api/eventhub/generate-sas-token, which
Notification Hubs' REST pages name as "Shared Access Signature Authentication
with Service Bus"; Microsoft's Python sample signs ``quote(endpoint + hub,
'').lower()``, azure-notificationhubs-samples notificationhubs-rest-python).

A token grants its rule's rights on ``sr`` and everything below it (a hub's URI,
or the namespace's). Rights: Listen (installations), Send (sends), Manage (both)
(https://learn.microsoft.com/en-us/azure/notification-hubs/notification-hubs-push-notification-security).
Any failure is 401, "Authorization failure" on every REST page's table
(e.g. https://learn.microsoft.com/en-us/rest/api/notificationhubs/send-template-notification).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote, unquote, urlsplit

from .errors import HubError

Right = Literal["Listen", "Send", "Manage"]
SCHEME = "SharedAccessSignature "
#: The two rules every hub is created with, and their rights (the security page above).
FULL_RULE = "DefaultFullSharedAccessSignature"
LISTEN_RULE = "DefaultListenSharedAccessSignature"
DEFAULT_RIGHTS: dict[str, frozenset[Right]] = {
    FULL_RULE: frozenset({"Listen", "Send", "Manage"}),
    LISTEN_RULE: frozenset({"Listen"}),
}
#: Longest Authorization header read.
MAX_HEADER = 4096


@dataclass(frozen=True)
class Rule:
    """A shared access policy: its key and what it may do."""

    key: str
    rights: frozenset[Right]


def sign(resource_uri: str, rule: str, key: str, expiry: int) -> str:
    """A token for ``resource_uri`` until ``expiry`` (what a client sends; tests use it)."""
    encoded = quote(resource_uri, safe="").lower()
    signature = _signature(key, f"{encoded}\n{expiry}")
    return f"{SCHEME}sr={encoded}&sig={quote(signature, safe='')}&se={expiry}&skn={rule}"


def _signature(key: str, text: str) -> str:
    digest = hmac.new(key.encode("utf-8"), text.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def authorize(header: str | None, url: str, rules: Mapping[str, Rule], needed: Right,
              now: float | None = None) -> str:
    """The rule name whose valid token for ``url`` with right ``needed`` ``header`` holds.

    Raises HubError 401 otherwise, saying which check failed (never the key).
    """
    if not header or len(header) > MAX_HEADER or not header.startswith(SCHEME):
        raise HubError(401, "MissingToken: the Authorization header must hold a "
                            "SharedAccessSignature token.")
    fields: dict[str, str] = {}
    for part in header[len(SCHEME):].split("&"):
        name, _, value = part.partition("=")
        fields[name.strip()] = value.strip()
    sr, sig, se = (fields.get(name, "") for name in ("sr", "sig", "se"))
    skn = unquote(fields.get("skn", ""))  # clients may encode the rule's name
    if not (sr and sig and se.isdigit() and skn):
        raise HubError(401, "MalformedToken: the token needs sr, sig, se and skn.")
    rule = rules.get(skn)
    if rule is None:
        raise HubError(401, f"InvalidSignature: no shared access policy is named {skn[:64]!r}.")
    # Bytes, not text: compare_digest refuses a str with non-ASCII characters (TypeError),
    # and a forged token may hold any.
    expected = _signature(rule.key, f"{sr}\n{se}").encode("ascii")
    if not hmac.compare_digest(expected, unquote(sig).encode("utf-8", "surrogatepass")):
        raise HubError(401, "InvalidSignature: the token's signature does not match its "
                            "policy's key.")
    if int(se) <= (time.time() if now is None else now):
        raise HubError(401, "ExpiredToken: the token's expiry (se) has passed.")
    if not _covers(unquote(sr), url):
        raise HubError(401, "InvalidAudience: the token's resource URI (sr) does not cover "
                            "this request's URI.")
    if needed not in rule.rights and "Manage" not in rule.rights:
        raise HubError(401, f"Unauthorized: the policy {skn!r} lacks the {needed} right "
                            "this operation requires.")
    return skn


def _covers(resource: str, url: str) -> bool:
    """Whether the token's resource URI is ``url`` or a path prefix of it (any scheme:
    ``sb://``, ``https://``, and ``http://`` for this local double; case-insensitive)."""
    granted, asked = urlsplit(resource.lower()), urlsplit(url.lower())
    if granted.netloc != asked.netloc:
        return False
    prefix = granted.path.rstrip("/")
    return asked.path == prefix or asked.path.startswith(f"{prefix}/")
