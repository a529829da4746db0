"""Placing a call whose TwiML is always this app's own ``twiml`` function.

The client chooses what the callee hears (message, voice, language) but
never the TwiML URL or raw TwiML: otherwise anyone holding the function key,
which ships inside the mobile app, could make the account dial anywhere or
bridge calls to premium numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from shared.outgoing import default_sender, destination, sender
from shared.problems import invalid_request
from shared.request_body import Payload
from shared.settings import Settings
from shared.twilio_client import client_for
from shared.twilio_errors import calling_twilio
from shared.voice import DEFAULT_MESSAGE, MAX_MESSAGE, voice_options

FIELDS = ("to", "from", "message", "voice", "language")


@dataclass(frozen=True)
class CallRequest:
    to: str
    from_: str
    twiml_url: str


def read_call(payload: Payload, settings: Settings, request_url: str) -> CallRequest:
    """Validate a client's call request and build the TwiML URL it will play."""
    payload.reject_unknown(FIELDS)
    to = destination(payload, settings)
    from_ = sender(payload) or default_sender(settings)
    message = payload.text("message", max_length=MAX_MESSAGE) or DEFAULT_MESSAGE
    options = voice_options(payload.text("voice", max_length=64),
                            payload.text("language", max_length=16))
    query = {"message": message, **options}
    return CallRequest(to, from_, twiml_url(request_url, settings, query))


def twiml_url(request_url: str, settings: Settings, query: dict[str, str]) -> str:
    """The ``twiml`` function beside this one, on the app's public origin."""
    try:
        parts = urlsplit(request_url)
    except ValueError:  # a malformed Host header (unbalanced [ ]) reached the app
        raise invalid_request("the request URL cannot be parsed") from None
    origin = settings.public_base_url or f"{parts.scheme}://{parts.netloc}"
    folder = parts.path.rsplit("/", 1)[0]
    return f"{origin}{folder}/twiml?{urlencode(query)}"


async def place_call(call: CallRequest, settings: Settings) -> dict[str, Any]:
    """Create the call with Twilio; answer its public fields."""
    client = client_for(settings)
    created = await calling_twilio(
        client.api.v2010.account.calls.create_async(to=call.to, from_=call.from_,
                                            url=call.twiml_url, method="POST")
    )
    return {"sid": created.sid, "status": created.status, "to": created.to,
            "from": created._from}  # twilio names it _from on calls
