"""Voice SDK client identities: which user a token is for, and whose call a ``client:`` is.

Twilio takes identities of ASCII letters, digits and underscores, at most
121 characters. A signed-in user's identity is their owner
(``user:<provider>:<id>``, ``shared.identity``, which no two users share)
with every other character written as ``_`` and two hex digits
(``user:aad:0c3b-...`` -> ``user_3aaad_3a0c3b_2d...``): distinct users never
share an identity, and the ``voice`` webhook reads back, from the identity
alone, whose call it is. A caller without a signed-in user gets
``VOICE_SINGLE_USER_IDENTITY``, which cannot start like a signed-in user's,
or no identity at all.

``voice`` accepts exactly the identities ``voice_token`` issues under the
current settings, by asking the same question (``issue``): it reads the
principal an identity names as ``voice_token`` reads Easy Auth's headers, and
accepts the identity only if that gives it back. So the single-user identity
stops calling once ``REQUIRE_SIGNED_IN_USER`` is set, users' identities once
Easy Auth is off, and a spelling ``read_caller`` never produces (an
upper-case provider) never calls, nor gets a rate-limit bucket of its own.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

import azure.functions as func

from shared.identity import ANONYMOUS_OWNER, PRINCIPAL_ID, PRINCIPAL_IDP, Caller, read_caller
from shared.problems import Problem, sign_in_required
from shared.settings import CLIENT_IDENTITY, Settings

CLIENT_PREFIX = "client:"
_ESCAPE = re.compile(r"[^A-Za-z0-9]")
_ESCAPED = re.compile(r"_([0-9a-fA-F]{2})")
# An owner: the provider's own ':' and '%' are percent-encoded, so the first ':' ends it.
_OWNER = re.compile(r"user:([\x21-\x39\x3b-\x7e]+):([\x21-\x7e]+)")
# The request voice_token would get from that user: read_caller reads its headers alone.
_ASKED_AT = "http://localhost/api/voice_token"


def issue(req: func.HttpRequest, settings: Settings) -> tuple[Caller, str]:
    """Who asks ``voice_token``, and the identity their token carries (401/403 if none).

    The one rule both ``voice_token`` (issuing) and ``voice`` (accepting) follow.
    """
    caller = read_caller(req, settings)
    return caller, identity_for(caller, settings)


def identity_for(caller: Caller, settings: Settings) -> str:
    """The identity the caller's token carries: 401 for a caller nobody may be."""
    if not caller.signed_in:
        if settings.voice_single_user_identity is None:
            raise sign_in_required()
        return settings.voice_single_user_identity
    identity = _escape(caller.owner)
    if not CLIENT_IDENTITY.fullmatch(identity):
        raise Problem(403, "identity-unusable", "this user's ID is too long for a Voice SDK "
                      "identity (121 characters)", title="No Voice SDK identity")
    return identity


def identity_of(owner: str, settings: Settings) -> str | None:
    """The identity whose token ``owner`` holds now (``voice_token`` would issue it): what
    rings them. None when they can hold none (a user while Easy Auth is off, the
    anonymous owner without ``VOICE_SINGLE_USER_IDENTITY``, an ID too long)."""
    identity = (settings.voice_single_user_identity if owner == ANONYMOUS_OWNER
                else _escape(owner))
    if identity is None or not CLIENT_IDENTITY.fullmatch(identity):
        return None
    caller = caller_of(identity, settings)
    return identity if caller is not None and caller.owner == owner else None


def client_identity(address: str | None) -> str | None:
    """The identity of a ``client:<identity>`` address, if well-formed."""
    if address is None or not address.startswith(CLIENT_PREFIX):
        return None
    identity = address[len(CLIENT_PREFIX):]
    return identity if CLIENT_IDENTITY.fullmatch(identity) else None


def caller_of(identity: str, settings: Settings) -> Caller | None:
    """Whose identity this is, if ``voice_token`` would issue it now; None otherwise."""
    principal = _principal(identity, settings)
    if principal is None:
        return None
    asking = func.HttpRequest("POST", _ASKED_AT, headers=principal, body=b"")
    try:
        caller, issued = issue(asking, settings)
    except Problem:
        return None
    return caller if issued == identity else None


def _principal(identity: str, settings: Settings) -> dict[str, str] | None:
    """The Easy Auth headers of the user ``identity`` names (none for the single-user one)."""
    if identity == settings.voice_single_user_identity:
        return {}
    match = _OWNER.fullmatch(_ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), identity))
    if match is None:
        return None
    provider, user_id = match.groups()
    return {PRINCIPAL_ID: user_id, PRINCIPAL_IDP: unquote(provider)}


def _escape(owner: str) -> str:
    return _ESCAPE.sub(lambda m: f"_{ord(m.group()):02x}", owner)
