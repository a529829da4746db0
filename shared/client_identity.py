"""Voice SDK client identities: which user a token is for, and whose call a ``client:`` is.

Twilio takes identities of ASCII letters, digits and underscores, at most
121 characters. A signed-in user's identity is their owner key
(``user:<provider>:<id>``, ``shared.identity``) with every other character
written as ``_`` and two hex digits (``user:aad:0c3b-...`` ->
``user_3aaad_3a0c3b_2d...``): distinct users never share an identity, and the
``voice`` webhook reads back, from the identity alone, whose call it is. A
caller without a signed-in user gets ``VOICE_SINGLE_USER_IDENTITY``, which
cannot start like a signed-in user's, or no identity at all.
"""

from __future__ import annotations

import re

from shared.identity import ANONYMOUS, Caller
from shared.problems import Problem, sign_in_required
from shared.settings import CLIENT_IDENTITY, Settings

CLIENT_PREFIX = "client:"
_ESCAPE = re.compile(r"[^A-Za-z0-9]")
_ESCAPED = re.compile(r"_([0-9a-f]{2})")
_OWNER = re.compile(r"user:([\x21-\x7e]+?):([\x21-\x7e]+)")


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


def client_identity(address: str | None) -> str | None:
    """The identity of a ``client:<identity>`` address, if well-formed."""
    if address is None or not address.startswith(CLIENT_PREFIX):
        return None
    identity = address[len(CLIENT_PREFIX):]
    return identity if CLIENT_IDENTITY.fullmatch(identity) else None


def caller_of(identity: str, settings: Settings) -> Caller | None:
    """Whose identity this is, as ``identity_for`` made it; None if this app made no such one."""
    if identity == settings.voice_single_user_identity:
        return ANONYMOUS
    owner = _ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), identity)
    if _escape(owner) != identity:
        return None  # not the escaping of any owner: a bare "_", or upper-case hex digits
    match = _OWNER.fullmatch(owner)
    if match is None:
        return None
    provider, user_id = match.groups()
    return Caller(user_id, provider)


def _escape(owner: str) -> str:
    return _ESCAPE.sub(lambda m: f"_{ord(m.group()):02x}", owner)
