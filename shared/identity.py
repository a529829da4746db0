"""Who is asking: the signed-in user from App Service Authentication ("Easy Auth").

When authentication is on, Azure's front end validates the user's session or
token, strips any ``X-MS-CLIENT-PRINCIPAL*`` header the client sent, and adds
its own; it tells the app so by setting ``WEBSITE_AUTH_ENABLED=True``. Only
then are those headers the caller's identity. Otherwise a client could write
them itself, so they are ignored and every caller is the same anonymous owner.

A principal the app cannot key on (an ID that is empty, over 256 characters
or not printable ASCII; no provider) is refused with 401, never taken for the
anonymous caller: that would hand it the anonymous caller's SIDs and threads.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass

import azure.functions as func

from shared.problems import Problem, sign_in_required
from shared.settings import Settings

PRINCIPAL_ID = "X-MS-CLIENT-PRINCIPAL-ID"
PRINCIPAL_IDP = "X-MS-CLIENT-PRINCIPAL-IDP"
PRINCIPAL_NAME = "X-MS-CLIENT-PRINCIPAL-NAME"
PRINCIPAL = "X-MS-CLIENT-PRINCIPAL"
ANONYMOUS_OWNER = "anonymous"

# Provider user IDs are GUIDs (Entra ID), digits (Google) or dotted tokens (Apple);
# provider names are Azure's (aad, google, ...) or the custom OpenID Connect provider's.
_TOKEN = re.compile(r"[\x21-\x7e]{1,256}")


@dataclass(frozen=True)
class Caller:
    """The user a request acts for; ``user_id`` None for the anonymous caller."""

    user_id: str | None = None
    provider: str | None = None
    name: str | None = None

    @property
    def signed_in(self) -> bool:
        return self.user_id is not None

    @property
    def owner(self) -> str:
        """Whom what this caller creates belongs to: ``user:<provider>:<user ID>``.

        A user ID is unique within its identity provider only, so the provider
        is part of it, with ``%`` and ``:`` percent-encoded: the first ``:`` after
        it ends it, and no two (provider, user ID) pairs make one owner (provider
        ``a:b`` with user ``c`` is ``user:a%3ab:c``; provider ``a`` with user
        ``b:c`` is ``user:a:b:c``). At most 1,030 characters: table keys take it
        hashed (``shared.conversations``, ``shared.limits``, ``shared.idempotency``).
        """
        if self.user_id is None:
            return ANONYMOUS_OWNER
        provider = (self.provider or "").replace("%", "%25").replace(":", "%3a")
        return f"user:{provider}:{self.user_id}"


ANONYMOUS = Caller()


def read_caller(req: func.HttpRequest, settings: Settings) -> Caller:
    """The caller; 401 when a signed-in user is required and there is none."""
    caller = _principal(req) if settings.easy_auth else ANONYMOUS
    if settings.require_signed_in_user and not caller.signed_in:
        raise sign_in_required()
    return caller


def _principal(req: func.HttpRequest) -> Caller:
    """Easy Auth's user; the anonymous caller only when Easy Auth names none."""
    user_id = req.headers.get(PRINCIPAL_ID)
    if user_id is None:
        return ANONYMOUS
    if not _TOKEN.fullmatch(user_id):
        raise _unusable(f"{PRINCIPAL_ID} is not 1 to 256 printable ASCII characters")
    provider = req.headers.get(PRINCIPAL_IDP)
    if provider is None:
        provider = _claims_provider(req.headers.get(PRINCIPAL))
    if provider is None or not _TOKEN.fullmatch(provider):
        raise _unusable(f"neither {PRINCIPAL_IDP} nor the principal's auth_typ names its "
                        "identity provider in 1 to 256 printable ASCII characters")
    return Caller(user_id, provider.lower(), req.headers.get(PRINCIPAL_NAME))


def _unusable(reason: str) -> Problem:
    """401 for a principal the app cannot tell apart from others (RFC 6750 invalid_token)."""
    return Problem(401, "sign-in-required", f"the signed-in user cannot be used: {reason}",
                   title="Sign-in required",
                   headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


def _claims_provider(encoded: str | None) -> str | None:
    """``auth_typ`` of the base64 JSON principal, when the IDP header is absent."""
    if not encoded:
        return None
    try:
        principal = json.loads(base64.b64decode(encoded, validate=True))
    except (binascii.Error, ValueError):
        return None
    provider = principal.get("auth_typ") if isinstance(principal, dict) else None
    return provider if isinstance(provider, str) else None
