"""Placing a call whose TwiML is always this app's own ``twiml`` function.

The client chooses what the callee hears (message, voice, language) but
never the TwiML URL or raw TwiML: otherwise anyone holding the function key,
which ships inside the mobile app, could make the account dial anywhere or
bridge calls to premium numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.outgoing import default_sender, destination, sender
from shared.problems import invalid_field
from shared.request_body import Payload
from shared.settings import Settings
from shared.twilio_client import client_for
from shared.twilio_errors import calling_twilio
from shared.urls import TWIML_OVERRIDES, function_url
from shared.voice import DEFAULT_MESSAGE, MAX_MESSAGE, read_voice_options

FIELDS = ("to", "from", "message", "voice", "language")
# Twilio and Azure's front end refuse longer URLs; a 1000-character message
# in a non-Latin script can exceed it once percent-encoded.
MAX_TWIML_URL = 4000


# The call events Twilio reports to the status callback (all of them).
STATUS_EVENTS = ("initiated", "ringing", "answered", "completed")


@dataclass(frozen=True)
class CallRequest:
    to: str
    from_: str
    twiml_url: str
    status_callback: str | None = None


def read_call(payload: Payload, settings: Settings, request_url: str,
              status_callback: str | None = None) -> CallRequest:
    """Validate a client's call request and build the TwiML URL it will play."""
    payload.reject_unknown(FIELDS)
    to = destination(payload, settings)
    from_ = sender(payload, settings, default=settings.from_number) or default_sender(settings)
    message = payload.text("message", max_length=MAX_MESSAGE) or DEFAULT_MESSAGE
    options = read_voice_options(payload)
    url = twiml_url(request_url, settings, {"message": message, **options})
    if len(url) > MAX_TWIML_URL:
        raise invalid_field("message", "is too long once URL-encoded for Twilio to fetch")
    return CallRequest(to, from_, url, status_callback)


def twiml_url(request_url: str, settings: Settings, query: dict[str, str]) -> str:
    return function_url(request_url, settings, "twiml", query, TWIML_OVERRIDES)


async def place_call(call: CallRequest, settings: Settings) -> dict[str, Any]:
    """Create the call with Twilio; answer its public fields, with the numbers used.

    The TwiML URL is its own ``FallbackUrl``: if Twilio cannot get the TwiML (an instance
    starting for longer than Twilio waits), it asks once more before speaking its
    "application error" to the callee.
    """
    client = client_for(settings)
    tracking: dict[str, Any] = {}
    if call.status_callback:
        tracking = {"status_callback": call.status_callback, "status_callback_method": "POST",
                    "status_callback_event": list(STATUS_EVENTS)}
    created = await calling_twilio(
        client.api.v2010.account.calls.create_async(to=call.to, from_=call.from_,
                                                    url=call.twiml_url, method="POST",
                                                    fallback_url=call.twiml_url,
                                                    fallback_method="POST", **tracking)
    )
    return {"sid": created.sid, "status": created.status, "to": call.to, "from": call.from_}
