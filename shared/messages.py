"""Sending an SMS or MMS from the configured sender."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from twilio.base import values

from shared.outgoing import default_sender, destination, sender
from shared.problems import invalid_field
from shared.request_body import Payload
from shared.settings import Settings
from shared.twilio_client import client_for
from shared.twilio_errors import calling_twilio
from shared.urls import MAX_URL, is_public_url

FIELDS = ("to", "from", "body", "media_url")
MAX_BODY = 1600  # Twilio's limit for one message (error 21617)
MAX_MEDIA = 10  # Twilio's limit of media per MMS (error 21623)


@dataclass(frozen=True)
class SmsRequest:
    to: str
    body: str | None
    media_urls: list[str] = field(default_factory=list)
    from_: str | None = None
    messaging_service_sid: str | None = None
    status_callback: str | None = None

    @property
    def line(self) -> str:
        """What it is sent from: the number, else the Messaging Service (a recipient's
        opt-out and replies belong to it)."""
        line = self.from_ or self.messaging_service_sid
        assert line is not None
        return line


def read_sms(payload: Payload, settings: Settings,
             status_callback: str | None = None) -> SmsRequest:
    """Validate a client's message; pick the sender: an allowed ``from``, the service,
    the number."""
    payload.reject_unknown(FIELDS)
    to = destination(payload, settings)
    body = payload.text("body", max_length=MAX_BODY)
    media = payload.texts("media_url", max_items=MAX_MEDIA, max_length=MAX_URL)
    if not all(map(is_public_url, media)):
        raise invalid_field("media_url", "must be absolute https URLs")
    if body is None and not media:
        raise invalid_field("body", "is required unless media_url is given")
    service = settings.messaging_service_sid
    from_ = sender(payload, settings, default=None if service else settings.from_number)
    if from_ is None and service:
        return SmsRequest(to, body, media, messaging_service_sid=service,
                          status_callback=status_callback)
    return SmsRequest(to, body, media, from_=from_ or default_sender(settings),
                      status_callback=status_callback)


async def send_message(sms: SmsRequest, settings: Settings) -> dict[str, Any]:
    """Create the message with Twilio; answer its public fields, with the numbers used."""
    client = client_for(settings)
    created = await calling_twilio(
        client.api.v2010.account.messages.create_async(
            to=sms.to,
            body=sms.body if sms.body is not None else values.unset,
            media_url=sms.media_urls or values.unset,
            from_=sms.from_ or values.unset,
            messaging_service_sid=sms.messaging_service_sid or values.unset,
            status_callback=sms.status_callback or values.unset,
        )
    )
    date_created = created.date_created
    # The numbers as the app used them (canonical); Twilio names the service's pick.
    return {"sid": created.sid, "status": created.status, "to": sms.to,
            "from": sms.from_ or created.from_,
            "date_created": date_created.isoformat() if date_created else None}
