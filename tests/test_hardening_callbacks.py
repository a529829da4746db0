"""A status callback's time that cannot be held stands for nothing: the arrival is kept.

``Timestamp`` is a signed field of Twilio's, but a signature proves who sent it,
not that it is a time the app can hold: ``Fri, 31 Dec 9999 23:59:59 -0100`` is
in the year 10000 in UTC. Such a report is recorded at its arrival, never a 500.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import azure.functions as func
import pytest
import unique
from deployed import ORIGIN, deployed
from harness import ACCOUNT_SID, AUTH_TOKEN, created, invoke, request
from storage import shared_azurite
from twilio.request_validator import RequestValidator

from shared.delivery_status import read_report
from shared.identity import ANONYMOUS
from shared.threads import owner_key

#: The StatusCallback URL the app gives Twilio for a send without a sign-in.
CALLBACK = f"{ORIGIN}/api/status_callback?owner={owner_key(ANONYMOUS.owner)}"
OUT_OF_RANGE = ("Fri, 31 Dec 9999 23:59:59 -0100", "Fri, 31 Dec 9999 23:59:59 +0000",
                "Sat, 01 Jan 10000 00:00:00 +0000", "Fri, 31 Dec 9999 25:61:61 +0000",
                "Thu, 01 Jan 1970 00:00:00 +9999", "not a date")


@pytest.fixture
def on_azure(app_env, monkeypatch):
    with deployed(app_env, monkeypatch, shared_azurite().connection_string) as env:
        yield env


@pytest.mark.parametrize("stamp", OUT_OF_RANGE)
def test_a_time_out_of_range_is_the_arrival(stamp):
    received = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    report = read_report({"AccountSid": ACCOUNT_SID, "CallSid": "CA" + "c" * 32,
                          "CallStatus": "ringing", "SequenceNumber": "1", "Timestamp": stamp},
                         {}, received)
    assert report.at == received


def test_a_signed_callback_from_the_year_10000_is_recorded_not_a_500(on_azure):
    to = unique.number()
    sent = invoke("send_sms", request("POST", f"{ORIGIN}/api/send_sms",
                                      json_body={"to": to, "body": "Your table is ready"}))
    sid = created(sent)["sid"]
    params = {"AccountSid": ACCOUNT_SID, "ApiVersion": "2010-04-01", "MessageSid": sid,
              "SmsSid": sid, "MessageStatus": "sent", "SmsStatus": "sent",
              "To": to, "Timestamp": OUT_OF_RANGE[0]}
    signature = RequestValidator(AUTH_TOKEN).compute_signature(CALLBACK, params)
    before = datetime.now(UTC)
    answer = invoke("status_callback", request("POST", CALLBACK, form=params,
                                               headers={"X-Twilio-Signature": signature}))
    assert answer.status_code == 204, answer.get_body()

    view = json.loads(invoke("status", func.HttpRequest(
        "GET", f"{ORIGIN}/api/status/{sid}", body=b"", route_params={"sid": sid})).get_body())
    assert view["status"] == "sent"
    sent_at = datetime.fromisoformat(view["history"][-1]["at"])
    assert before.replace(microsecond=0) <= sent_at <= datetime.now(UTC)
