"""Whose conversation a reply joins: ``SMS_REPLY_ATTRIBUTION``, each mode, and the unclaimed.

``last-sender`` (the default) gives a reply to the user who last texted its
sender, so another user can take a contact's replies over by texting it:
right for a single-user app. ``recent-sender`` gives it to the one user who
texted it within ``SMS_REPLY_WINDOW_HOURS``, and to nobody's thread when
several did or nobody did lately; those go to ``SMS_UNASSIGNED_OWNER``, else
to nobody. Run like ``test_two_way_sms``: the functions in-process, Easy
Auth's users, the store on Azurite, replies signed as Twilio signs them.
"""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime, timedelta

import pytest
from harness import FROM_NUMBER, invoke, refused, request
from storage import run
from test_two_way_sms import (  # noqa: F401 - on_azure: the deployment these tests run in
    ORIGIN,
    in_store,
    inbound_params,
    listing,
    on_azure,
    receive,
    record_sent,
    sent,
    thread,
    thread_of,
    user,
)
from unique import number

from shared.conversations import record_incoming, sms
from shared.identity import Caller
from shared.settings import SettingError, load_settings
from shared.store import store_for

pytestmark = pytest.mark.usefixtures("on_azure")


def someone(name: str) -> tuple[Caller, dict[str, str]]:
    """A signed-in user of this test alone: as the store knows them, and their headers."""
    user_id = f"{name}-{secrets.token_hex(4)}"
    return Caller(user_id, "aad"), user(user_id)


def directions(remote: str, headers: dict[str, str]) -> list[str]:
    return [m["direction"] for m in thread_of(remote, headers)["items"]]


def reply(caplog: pytest.LogCaptureFixture, remote: str, body: str = "Who is this?") -> str:
    """A reply from ``remote``, through ``twiml``: the outcome its log line counts."""
    params = inbound_params(remote, body)
    caplog.set_level(logging.INFO, "twilio_functions")
    assert receive(params).status_code == 200
    [line] = [r.getMessage() for r in caplog.records
              if f"sid={params['MessageSid']} outcome=" in r.getMessage()]
    return line.rsplit("outcome=", 1)[1].split()[0]


# --- last-sender: the default ---------------------------------------------------------


def test_by_default_the_last_sender_takes_the_replies_over(caplog):
    """Documented: right where one person (or one team) uses the app."""
    remote = number()
    _, alice = someone("alice")
    _, bob = someone("bob")
    sent(remote, alice)
    sent(remote, bob)
    assert reply(caplog, remote) == "attributed"
    assert directions(remote, bob) == ["incoming", "outgoing"]
    assert directions(remote, alice) == ["outgoing"]


# --- recent-sender: nobody diverts another user's replies -----------------------------


@pytest.fixture
def recent_sender(monkeypatch):
    monkeypatch.setenv("SMS_REPLY_ATTRIBUTION", "recent-sender")
    monkeypatch.setenv("SMS_REPLY_WINDOW_HOURS", "72")


@pytest.mark.usefixtures("recent_sender")
def test_recent_sender_gives_the_reply_to_the_one_user_who_texted_lately(caplog):
    remote = number()
    _, alice = someone("alice")
    sent(remote, alice)
    assert reply(caplog, remote) == "attributed"
    assert directions(remote, alice) == ["incoming", "outgoing"]


@pytest.mark.usefixtures("recent_sender")
def test_recent_sender_texting_another_users_contact_diverts_nothing(caplog):
    remote = number()
    _, alice = someone("alice")
    _, mallory = someone("mallory")
    sent(remote, alice)
    sent(remote, mallory)  # to take alice's replies
    assert reply(caplog, remote, "my bank code is 1234") == "unattributed"
    assert directions(remote, mallory) == ["outgoing"]
    assert directions(remote, alice) == ["outgoing"]


@pytest.mark.usefixtures("recent_sender")
def test_recent_sender_a_text_older_than_the_window_claims_nothing(caplog):
    remote, now = number(), datetime.now(UTC)
    erin, erin_headers = someone("erin")
    frank, frank_headers = someone("frank")
    record_sent(erin, remote, FROM_NUMBER, "three days and more ago", now - timedelta(hours=73))
    assert reply(caplog, remote, "late answer") == "unattributed"
    assert directions(remote, erin_headers) == ["outgoing"]
    record_sent(frank, remote, FROM_NUMBER, "just now", now)
    assert reply(caplog, remote, "to the one who wrote lately") == "attributed"
    assert directions(remote, frank_headers) == ["incoming", "outgoing"]


@pytest.mark.usefixtures("recent_sender")
def test_recent_sender_counts_the_messaging_service_and_the_number_together():
    """Under ``last-sender`` the number's sender would win; here both claim it."""
    service = "MG" + secrets.token_hex(16)
    remote, now = number(), datetime.now(UTC)
    gail, gail_headers = someone("gail")
    hank, hank_headers = someone("hank")
    record_sent(gail, remote, service, "through the service", now)
    record_sent(hank, remote, FROM_NUMBER, "from the number", now)
    params = inbound_params(remote, "to whom?", MessagingServiceSid=service)
    assert receive(params).status_code == 200
    assert directions(remote, hank_headers) == directions(remote, gail_headers) == ["outgoing"]


def test_recent_sender_never_reaches_past_the_retention(monkeypatch):
    monkeypatch.setenv("SMS_REPLY_ATTRIBUTION", "recent-sender")
    monkeypatch.setenv("SMS_REPLY_WINDOW_HOURS", "1000")
    monkeypatch.setenv("MESSAGE_RETENTION_DAYS", "2")
    settings = load_settings()
    remote, now = number(), datetime.now(UTC)
    ivy, _ = someone("ivy")
    record_sent(ivy, remote, FROM_NUMBER, "three days ago", now - timedelta(days=3), settings)

    async def arrive() -> str:
        store = store_for(settings)
        assert store is not None
        message = sms("SM" + secrets.token_hex(16), "incoming", remote, FROM_NUMBER, "hi",
                          at=now)
        return await record_incoming(store, settings, message, None)

    assert run(arrive()) == "unattributed"
    monkeypatch.setenv("MESSAGE_RETENTION_DAYS", "4")
    settings = load_settings()
    assert run(arrive()) == "attributed"


# --- SMS_UNASSIGNED_OWNER: who reads what nobody claims -------------------------------


@pytest.mark.usefixtures("recent_sender")
def test_an_unclaimed_reply_goes_to_the_unassigned_owner_and_only_there(monkeypatch, caplog):
    operator, operator_headers = someone("operator")
    monkeypatch.setenv("SMS_UNASSIGNED_OWNER", f"AAD:{operator.user_id}")  # provider: any case
    remote = number()
    _, alice = someone("alice")
    _, mallory = someone("mallory")
    sent(remote, alice)
    sent(remote, mallory)
    assert reply(caplog, remote, "for alice") == "unassigned"
    listed = {c["number"]: c for c in listing(operator_headers)["conversations"]}
    assert (listed[remote]["unread"], listed[remote]["last_item"]["body"]) == (1, "for alice")
    assert directions(remote, operator_headers) == ["incoming"]
    assert directions(remote, alice) == directions(remote, mallory) == ["outgoing"]


def test_a_message_nobody_texted_first_goes_to_the_unassigned_owner(monkeypatch, caplog):
    operator, operator_headers = someone("operator")
    monkeypatch.setenv("SMS_UNASSIGNED_OWNER", f"aad:{operator.user_id}")
    remote = number()
    assert reply(caplog, remote, "Hello, is this the shop?") == "unassigned"
    assert directions(remote, operator_headers) == ["incoming"]


def test_a_single_user_app_may_read_every_unclaimed_message_as_anonymous(monkeypatch, caplog):
    monkeypatch.delenv("WEBSITE_AUTH_ENABLED")
    monkeypatch.setenv("SMS_UNASSIGNED_OWNER", "anonymous")
    remote = number()
    assert reply(caplog, remote, "Hi, I saw your ad") == "unassigned"
    assert directions(remote, {}) == ["incoming"]


def test_anonymous_is_no_unassigned_owner_while_users_sign_in(monkeypatch):
    monkeypatch.setenv("SMS_UNASSIGNED_OWNER", "anonymous")
    with pytest.raises(SettingError, match="SMS_UNASSIGNED_OWNER"):
        load_settings()
    response = invoke("conversations", request("GET", f"{ORIGIN}/api/conversations",
                                               headers=someone("judy")[1]))
    assert refused(response, 500, "misconfigured")["setting"] == "SMS_UNASSIGNED_OWNER"


@pytest.mark.parametrize(("name", "value"), [
    ("SMS_REPLY_ATTRIBUTION", "first-sender"), ("SMS_REPLY_WINDOW_HOURS", "0"),
    ("SMS_REPLY_WINDOW_HOURS", "2h"), ("SMS_UNASSIGNED_OWNER", "no-provider"),
    ("SMS_UNASSIGNED_OWNER", "aad:"), ("SMS_UNASSIGNED_OWNER", "a:b:c d"),
])
def test_malformed_attribution_settings_are_named(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingError, match=name):
        load_settings()


def test_without_an_unassigned_owner_nobody_reads_it(caplog):
    remote = number()
    assert reply(caplog, remote) == "unattributed"
    refused(thread(remote, someone("kim")[1]), 404, "not-found")
    assert "nobody wrote to this sender" in caplog.text and remote not in caplog.text
