"""An incoming MMS through `make run`'s pieces (host, sandbox, Azurite), over HTTP.

The texter's picture reaches the sandbox as the console sends it (base64 in JSON);
the sandbox keeps it as Twilio keeps media, behind Basic Auth, and posts the app's
``twiml`` its ``MediaUrl0``. The mobile app finds a link to ``media`` in the
conversation, and only the user the reply belongs to reads the picture through it.
"""

from __future__ import annotations

import base64
import json
import secrets
import urllib.error
import urllib.request
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import unique
from harness import ACCOUNT_SID, AUTH_TOKEN, PROBLEM
from live import LiveApp
from test_delivery_e2e import http

from devhost.easy_auth import bearer

PNG = b"\x89PNG\r\n\x1a\n" + secrets.token_bytes(3000)


@pytest.fixture(scope="module")
def signed_in() -> Iterator[LiveApp]:
    """`make run` with App Service Authentication emulated: users told apart."""
    running = LiveApp({"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN},
                      args=("--sandbox", "--auth"))
    yield running
    assert running.stop() == 0
    assert "status=500" not in running.log()


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """GET, its answer as bytes whatever the status."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}),
                                    timeout=15) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_an_mms_is_read_by_its_owner_through_media_and_by_nobody_else(signed_in):
    alice, bob = {"Authorization": bearer("alice")}, {"Authorization": bearer("bob")}
    texter = unique.number()
    body = {"to": texter, "body": "Send me a photo of the damage"}
    assert http("POST", f"{signed_in.base_url}/api/send_sms", body, alice)[0] == 201
    arrived = signed_in.sandbox("POST", "/_sandbox/inbound/sms", {
        "from": texter, "body": "Here",
        "media": [{"data": base64.b64encode(PNG).decode(), "content_type": "image/png"}]})
    sid = arrived["message"]["sid"]
    assert sid.startswith("MM")
    assert arrived["webhook"]["answer"]["status"] == 200  # signed, accepted by twiml
    params = dict(arrived["webhook"]["params"])
    twilio_url = params["MediaUrl0"]
    assert urlsplit(twilio_url).port == urlsplit(signed_in.sandbox_url).port  # the sandbox's
    assert urlsplit(twilio_url).path.startswith(
        f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}/Media/ME")
    assert params["MediaContentType0"] == "image/png"

    # Twilio's URL is no use to the mobile app: it needs the account's credentials.
    status, _, refusal = fetch(twilio_url)
    assert (status, json.loads(refusal)["code"]) == (401, 20003)

    status, view, _ = http("GET", f"{signed_in.base_url}/api/conversations/{texter}",
                           headers=alice)
    assert status == 200
    incoming = view["items"][0]
    assert (incoming["sid"], incoming["body"]) == (sid, "Here")
    [link] = incoming["media_urls"]
    assert link == f"{signed_in.base_url}/api/media/{sid}/0"

    status, headers, picture = fetch(link, alice)
    assert (status, picture) == (200, PNG)
    assert (headers["Content-Type"], headers["Cache-Control"]) == ("image/png", "private")
    assert headers["X-Content-Type-Options"] == "nosniff"

    status, _, refusal = fetch(link, bob)
    assert (status, json.loads(refusal)["type"]) == (404, f"{PROBLEM}not-found")
