"""Who is asking: the signed-in user from App Service Authentication ("Easy Auth").

When authentication is on, Azure's front end validates the user's session or
token, strips any ``X-MS-CLIENT-PRINCIPAL*`` header the client sent, and adds
its own; it tells the app so by setting ``WEBSITE_AUTH_ENABLED=True``. Only
then are those headers the caller's identity. Otherwise a client could write
them itself, so they are ignored and every caller is the same anonymous owner.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass

import azure.functions as func

from shared.problems import sign_in_required
from shared.settings import Settings

PRINCIPAL_ID = "X-MS-CLIENT-PRINCIPAL-ID"
PRINCIPAL_IDP = "X-MS-CLIENT-PRINCIPAL-IDP"
PRINCIPAL_NAME = "X-MS-CLIENT-PRINCIPAL-NAME"
PRINCIPAL = "X-MS-CLIENT-PRINCIPAL"
ANONYMOUS_OWNER = "anonymous"

# Provider user IDs are GUIDs (Entra ID), digits (Google) or dotted tokens (Apple).
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
        """The key what this caller creates is stored under.

        A user ID is unique within its identity provider only, so the
        provider is part of it.
        """
        if self.user_id is None:
            return ANONYMOUS_OWNER
        return f"user:{self.provider or 'unknown'}:{self.user_id}"


ANONYMOUS = Caller()


def read_caller(req: func.HttpRequest, settings: Settings) -> Caller:
    """The caller; 401 when a signed-in user is required and there is none."""
    caller = _principal(req) if settings.easy_auth else ANONYMOUS
    if settings.require_signed_in_user and not caller.signed_in:
        raise sign_in_required()
    return caller


def _principal(req: func.HttpRequest) -> Caller:
    user_id = _token(req.headers.get(PRINCIPAL_ID))
    if user_id is None:
        return ANONYMOUS
    provider = (_token(req.headers.get(PRINCIPAL_IDP))
                or _claims_provider(req.headers.get(PRINCIPAL)))
    return Caller(user_id, provider and provider.lower(), req.headers.get(PRINCIPAL_NAME))


def _token(value: str | None) -> str | None:
    return value if value is not None and _TOKEN.fullmatch(value) else None


def _claims_provider(encoded: str | None) -> str | None:
    """``auth_typ`` of the base64 JSON principal, when the IDP header is absent."""
    if not encoded:
        return None
    try:
        principal = json.loads(base64.b64decode(encoded, validate=True))
    except (binascii.Error, ValueError):
        return None
    provider = principal.get("auth_typ") if isinstance(principal, dict) else None
    return _token(provider) if isinstance(provider, str) else None
