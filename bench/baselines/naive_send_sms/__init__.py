"""Baseline: ``send_sms`` written the tutorial's way, to show what the app's design saves.

Sync ``def main`` (run on the runtime's thread pool), ``twilio.rest`` imported
at module top, a new ``Client`` per request (so a new HTTP session and TCP
connection each time) and ``client.messages.create``. The only departure
from the tutorial: ``SandboxHttpClient`` sends Twilio's URLs to
``TWILIO_API_BASE_URL``, as the app does, so it can run against the sandbox.
"""

import json
import os
from typing import Any

import azure.functions as func
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

TWILIO_ORIGIN = "https://api.twilio.com"


class SandboxHttpClient(TwilioHttpClient):
    """twilio's default (requests) client, pointed at ``TWILIO_API_BASE_URL``."""

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        base = os.environ.get("TWILIO_API_BASE_URL", TWILIO_ORIGIN).rstrip("/")
        if url.startswith(TWILIO_ORIGIN):
            url = base + url[len(TWILIO_ORIGIN):]
        return super().request(method, url, *args, **kwargs)


def main(req: func.HttpRequest) -> func.HttpResponse:
    data = req.get_json()
    client = Client(os.environ["TWILIO_ACCOUNT_SID"], os.environ["TWILIO_AUTH_TOKEN"],
                    http_client=SandboxHttpClient())
    message = client.messages.create(
        to=data["to"], from_=os.environ["TWILIO_FROM_NUMBER"], body=data["body"]
    )
    return func.HttpResponse(
        json.dumps({"sid": message.sid, "status": message.status}),
        status_code=201,
        mimetype="application/json",
    )
