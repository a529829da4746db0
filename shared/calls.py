"""Placing a call whose TwiML is always this app's own ``twiml`` function.

The client chooses what the callee hears (message, voice, language) but
never the TwiML URL or raw TwiML: otherwise anyone holding the function key,
which ships inside the mobile app, could make the account dial anywhere or
bridge calls to premium numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from shared.origin import app_origin
from shared.outgoing import default_sender, destination, sender
from shared.problems import invalid_field, invalid_request
from shared.request_body import Payload
from shared.settings import Settings
from shared.twilio_client import client_for
from shared.twilio_errors import calling_twilio
from shared.voice import DEFAULT_MESSAGE, MAX_MESSAGE, read_voice_options

FIELDS = ("to", "from", "message", "voice", "language")
# Twilio and Azure's front end refuse longer URLs; a 1000-character message
# in a non-Latin script can exceed it once percent-encoded.
MAX_TWIML_URL = 4000


@dataclass(frozen=True)
class CallRequest:
    to: str
    from_: str
    twiml_url: str


def read_call(payload: Payload, settings: Settings, request_url: str) -> CallRequest:
    """Validate a client's call request and build the TwiML URL it will play."""
    payload.reject_unknown(FIELDS)
    to = destination(payload, settings)
    from_ = sender(payload, settings, default=settings.from_number) or default_sender(settings)
    message = payload.text("message", max_length=MAX_MESSAGE) or DEFAULT_MESSAGE
    options = read_voice_options(payload)
    url = twiml_url(request_url, settings, {"message": message, **options})
    if len(url) > MAX_TWIML_URL:
        raise invalid_field("message", "is too long once URL-encoded for Twilio to fetch")
    return CallRequest(to, from_, url)


def twiml_url(request_url: str, settings: Settings, query: dict[str, str]) -> str:
    """The ``twiml`` function beside this one, on the app's public origin.

    The route prefix comes from this request's path (``/api/make_call`` ->
    ``/api/twiml``); the origin from the settings, never from a client's Host
    header (``shared.origin``).
    """
    try:
        parts = urlsplit(request_url)
    except ValueError:  # a malformed Host header (unbalanced [ ]) reached the app
        raise invalid_request("the request URL cannot be parsed") from None
    origin = app_origin(parts, settings)
    path = re.sub("/{2,}", "/", parts.path).rstrip("/")  # /api/make_call/ routes here too
    return f"{origin}{path.rsplit('/', 1)[0]}/twiml?{urlencode(query)}"


async def place_call(call: CallRequest, settings: Settings) -> dict[str, Any]:
    """Create the call with Twilio; answer its public fields."""
    client = client_for(settings)
    created = await calling_twilio(
        client.api.v2010.account.calls.create_async(to=call.to, from_=call.from_,
                                            url=call.twiml_url, method="POST")
    )
    return {"sid": created.sid, "status": created.status, "to": created.to,
            "from": created._from}  # twilio names it _from on calls
