"""Voice SDK access tokens: the only module that imports ``twilio.jwt``.

A token lets the mobile app place calls through the TwiML App (whose Voice
URL is ``voice``) and receive calls for its identity. Twilio checks it as a
JWT signed (HS256) with an API key's secret, issued by that key for this
account; the auth token can never sign one, so an API key is required.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import VoiceGrant

from shared.problems import misconfigured
from shared.settings import Settings


@dataclass(frozen=True)
class VoiceToken:
    token: str
    identity: str
    expires_at: datetime

    def view(self) -> dict[str, Any]:
        """The public shape ``voice_token`` answers (openapi.yaml's VoiceToken)."""
        stamp = self.expires_at.isoformat().replace("+00:00", "Z")
        return {"token": self.token, "identity": self.identity, "expires_at": stamp}


def mint(settings: Settings, identity: str, now: float | None = None) -> VoiceToken:
    """A token for ``identity``, valid ``VOICE_TOKEN_TTL_SECONDS`` from ``now``.

    500 ``misconfigured`` naming the missing setting without an API key or a TwiML App.
    """
    if settings.api_key_sid is None or settings.api_key_secret is None:
        raise misconfigured("TWILIO_API_KEY_SID", "(with TWILIO_API_KEY_SECRET) is required for "
                            "Voice SDK tokens: Twilio accepts only tokens signed with an API key")
    if settings.twiml_app_sid is None:
        raise misconfigured("TWILIO_TWIML_APP_SID", "is required for Voice SDK tokens: it names "
                            "the TwiML App whose Voice URL is this app's voice function")
    issued = int(time.time() if now is None else now)
    expires = issued + settings.voice_token_ttl
    grant = VoiceGrant(incoming_allow=True, outgoing_application_sid=settings.twiml_app_sid,
                       push_credential_sid=settings.push_credential_sid)
    token = AccessToken(settings.account_sid, settings.api_key_sid, settings.api_key_secret,
                        grants=[grant], identity=identity, nbf=issued, valid_until=expires)
    return VoiceToken(token.to_jwt(), identity, datetime.fromtimestamp(expires, UTC))
