"""App Service Authentication ("Easy Auth"), as the local host emulates it (``--auth``).

On Azure, with authentication on, the platform's front end strips every
``X-MS-CLIENT-PRINCIPAL*`` header a client sends, validates the user's token,
and adds those headers itself for a signed-in user; a request without a token
passes unauthenticated (the app decides, ``REQUIRE_SIGNED_IN_USER``), one with
an invalid token gets 401. Locally the token is ``Authorization: Bearer
dev:<user>``: no identity provider, so never use it beyond loopback.
"""

from __future__ import annotations

import base64
import json
import re

from aiohttp import web
from multidict import CIMultiDict

PRINCIPAL_PREFIX = "x-ms-client-principal"
TOKEN_PREFIX = "dev:"  # noqa: S105 - a marker, not a secret
PROVIDER = "dev"
_USER = re.compile(r"[A-Za-z0-9._@+-]{1,64}")


def bearer(user: str) -> str:
    """The Authorization header value that signs ``user`` in locally."""
    return f"Bearer {TOKEN_PREFIX}{user}"


def principal_headers(user: str) -> dict[str, str]:
    """The headers Azure adds for a signed-in user (the principal as base64 JSON too)."""
    principal = {
        "auth_typ": PROVIDER,
        "claims": [
            {"typ": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier",
             "val": user},
            {"typ": "name", "val": user},
        ],
        "name_typ": "name",
        "role_typ": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
    }
    return {
        "X-MS-CLIENT-PRINCIPAL": base64.b64encode(json.dumps(principal).encode()).decode(),
        "X-MS-CLIENT-PRINCIPAL-ID": user,
        "X-MS-CLIENT-PRINCIPAL-NAME": user,
        "X-MS-CLIENT-PRINCIPAL-IDP": PROVIDER,
    }


def front(request: web.BaseRequest) -> web.BaseRequest | web.Response:
    """The request as the app would get it behind Easy Auth, or the 401 Azure answers."""
    headers: CIMultiDict[str] = CIMultiDict(
        (name, value) for name, value in request.headers.items()
        if not name.lower().startswith(PRINCIPAL_PREFIX))
    scheme, _, token = headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        user = token.strip().removeprefix(TOKEN_PREFIX)
        if not token.strip().startswith(TOKEN_PREFIX) or not _USER.fullmatch(user):
            return web.Response(status=401, headers={
                "WWW-Authenticate": 'Bearer realm="devhost", error="invalid_token"'})
        headers.update(principal_headers(user))
    return request.clone(headers=headers)
