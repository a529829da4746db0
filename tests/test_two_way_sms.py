"""Two-way SMS on real Table Storage (Azurite): replies reach the user who wrote, opt-outs hold.

The functions run in-process against the loopback Twilio sandbox (the real
``twilio`` library over HTTP) with Easy Auth's headers trusted, so users are
told apart as on Azure; incoming SMS are posted to ``twiml`` signed as Twilio
signs them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import secrets
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlencode

import azure.functions as func
import pytest
from harness import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    FROM_NUMBER,
    function_main,
    invoke,
    problem,
    refused,
    request,
)
from live import ROOMY_LIMITS
from storage import run, shared_azurite
from twilio.request_validator import RequestValidator
from unique import number

from shared import conversations as conversations_module
from shared import deliveries, opt_outs, threads
from shared.conversations import (
    CONVERSATIONS,
    list_for,
    list_page,
    message_page,
    purge_expired,
    record_incoming,
    sms,
    thread_for,
)
from shared.identity import Caller
from shared.opt_outs import refuse_opted_out
from shared.settings import app_settings, load_settings
from shared.store import Store, connect, store_for

ORIGIN = "https://contoso.azurewebsites.net"
TWIML = f"{ORIGIN}/api/twiml"
OTHER_LINE = "+15005550010"


def user(name: str) -> dict[str, str]:
    return {"X-MS-CLIENT-PRINCIPAL-ID": name, "X-MS-CLIENT-PRINCIPAL-IDP": "aad"}


ALICE, BOB = user("alice"), user("bob")


@pytest.fixture(autouse=True)
def on_azure(app_env, monkeypatch):
    """Deployed with Easy Auth on and the store on the session's Azurite."""
    monkeypatch.setenv("WEBSITE_HOSTNAME", "contoso.azurewebsites.net")
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "True")
    monkeypatch.setenv("STATE_STORAGE", shared_azurite().connection_string)
    for name, value in ROOMY_LIMITS.items():  # the session's Azurite counts every test's sends
        monkeypatch.setenv(name, value)
    # Status callbacks would go to contoso.azurewebsites.net: these tests read the
    # status the send recorded (test_delivery_e2e follows the callbacks).
    app_env.call_soon(lambda: setattr(app_env.sandbox, "status_callbacks", False))
    yield app_env
    app_env.call_soon(lambda: setattr(app_env.sandbox, "status_callbacks", True))


def in_store(use, settings=None):
    """``use(store)`` awaited on a fresh loop, with that loop's store."""
    async def act():
        return await use(store_for(settings or load_settings()))
    return run(act())


def record_sent(caller: Caller, remote: str, line: str, body: str, at: datetime,
                settings=None) -> None:
    """A send from ``line`` as send_sms records it (the sandbox sends from one number only):
    its sender noted, then its item and delivery."""
    settings = settings or load_settings()
    run(deliveries.note_sent(settings, caller.owner, line, remote, at))
    run(conversations_module.record_outgoing(
        settings, caller, line,
        {"sid": "SM" + secrets.token_hex(16), "to": remote, "from": line}, body, [], at))


def send(to: str, headers: dict[str, str], body: str = "Are you free tonight?",
         from_: str | None = None):
    payload = {"to": to, "body": body, **({"from": from_} if from_ else {})}
    return invoke("send_sms", request("POST", f"{ORIGIN}/api/send_sms", json_body=payload,
                                      headers=headers))


def sent(to: str, headers: dict[str, str], **kwargs) -> str:
    response = send(to, headers, **kwargs)
    assert response.status_code == 201, response.get_body()
    return json.loads(response.get_body())["sid"]


def inbound_params(sender: str, body: str, *, to: str = FROM_NUMBER,
                   account: str = ACCOUNT_SID, **extra: str) -> dict[str, str]:
    sid = "SM" + secrets.token_hex(16)
    return {"MessageSid": sid, "SmsSid": sid, "SmsMessageSid": sid, "AccountSid": account,
            "From": sender, "To": to, "Body": body, "NumMedia": "0", "NumSegments": "1",
            "SmsStatus": "received", "ApiVersion": "2010-04-01", **extra}


def receive(params: dict[str, str], *, token: str = AUTH_TOKEN, signed: bool = True):
    headers = ({"X-Twilio-Signature": RequestValidator(token).compute_signature(TWIML, params)}
               if signed else {})
    return invoke("twiml", request("POST", TWIML, form=params, headers=headers))


def replies(response) -> list[str]:
    assert response.status_code == 200, response.get_body()
    return [message.text for message in ET.fromstring(response.get_body()).iter("Message")]


def thread(remote: str, headers: dict[str, str], **query: str):
    """GET conversations/{number}, routed as the host routes it."""
    url = f"{ORIGIN}/api/conversations/{quote(remote)}?{urlencode(query)}"
    return invoke("conversations", func.HttpRequest(
        "GET", url, headers=headers, params=dict(query), route_params={"number": remote},
        body=b""))


def thread_of(remote: str, headers: dict[str, str], **query: str) -> dict:
    response = thread(remote, headers, **query)
    assert response.status_code == 200, response.get_body()
    assert response.headers["Cache-Control"] == "no-store"
    return json.loads(response.get_body())


def listing(headers: dict[str, str]) -> dict:
    response = invoke("conversations", request("GET", f"{ORIGIN}/api/conversations",
                                               headers=headers))
    assert response.status_code == 200, response.get_body()
    return json.loads(response.get_body())


def mark_read(remote: str, headers: dict[str, str], up_to: str) -> dict:
    """POST conversations/{number}/read, routed as the host routes it."""
    response = invoke("conversations", func.HttpRequest(
        "POST", f"{ORIGIN}/api/conversations/{quote(remote)}/read",
        headers={**headers, "Content-Type": "application/json"}, params={},
        route_params={"number": remote, "action": "read"},
        body=json.dumps({"up_to": up_to}).encode()))
    assert response.status_code == 200, response.get_body()
    return json.loads(response.get_body())


def latest(remote: str, headers: dict[str, str]) -> str:
    return thread_of(remote, headers)["items"][0]["body"]


def numbers_of(headers: dict[str, str]) -> list[str]:
    return [c["number"] for c in listing(headers)["conversations"]]


# --- attribution -------------------------------------------------------------------


def test_a_reply_reaches_the_user_who_wrote_and_nobody_else(on_azure):
    remote, elsewhere = number(), number()
    sid = sent(remote, ALICE)
    sent(elsewhere, BOB)  # bob writes to someone else
    reply = inbound_params(remote, "Yes, 8pm?")
    assert replies(receive(reply)) == []  # no SMS_REPLY_MESSAGE: nothing answered
    view = thread_of(remote, ALICE)
    assert [(m["direction"], m["body"]) for m in view["items"]] == [
        ("incoming", "Yes, 8pm?"), ("outgoing", "Are you free tonight?")]
    incoming, outgoing = view["items"]
    assert (incoming["sid"], incoming["from"], incoming["to"], incoming["status"]) == (
        reply["MessageSid"], remote, FROM_NUMBER, "received")
    assert (outgoing["sid"], outgoing["from"], outgoing["to"]) == (sid, FROM_NUMBER, remote)
    assert outgoing["status"] in ("queued", "sent", "delivered")  # the delivery store's
    assert problem(thread(remote, BOB))["status"] == 404
    assert remote not in numbers_of(BOB)
    assert [m["direction"] for m in thread_of(elsewhere, BOB)["items"]] == ["outgoing"]


def test_the_user_who_last_wrote_from_that_number_gets_the_reply(on_azure):
    remote = number()
    sent(remote, ALICE)
    sent(remote, BOB)  # same Twilio number, same remote number, later
    receive(inbound_params(remote, "Who is this?"))
    assert [m["direction"] for m in thread_of(remote, BOB)["items"]] == [
        "incoming", "outgoing"]
    assert [m["direction"] for m in thread_of(remote, ALICE)["items"]] == ["outgoing"]
    sent(remote, ALICE)  # alice writes again: the next reply is hers
    receive(inbound_params(remote, "Ah, Alice!"))
    assert latest(remote, ALICE) == "Ah, Alice!"
    assert latest(remote, BOB) == "Who is this?"


def test_a_reply_to_another_twilio_number_belongs_to_who_wrote_from_it(on_azure):
    remote = number()
    sent(remote, ALICE)  # from the default number
    record_sent(Caller("bob", "aad"), remote, OTHER_LINE, "from the other line",
                datetime.now(UTC))
    receive(inbound_params(remote, "to the default line"))
    receive(inbound_params(remote, "to the other line", to=OTHER_LINE))
    assert latest(remote, ALICE) == "to the default line"
    assert latest(remote, BOB) == "to the other line"


def test_a_message_nobody_wrote_first_is_kept_unattributed_and_counted(on_azure, caplog):
    remote = number()
    params = inbound_params(remote, "Hello?")
    with caplog.at_level(logging.INFO, logger="twilio_functions"):
        assert receive(params).status_code == 200
    assert f"sid={params['MessageSid']} outcome=unattributed" in caplog.text
    assert remote not in caplog.text  # masked
    assert problem(thread(remote, ALICE))["status"] == 404

    [row] = in_store(lambda store: threads.item_rows(store, conversations_module.UNATTRIBUTED,
                                                     remote))
    assert row.fields["Sid"] == params["MessageSid"]


def test_a_webhook_twilio_delivers_twice_is_stored_once(on_azure):
    remote = number()
    sent(remote, ALICE)
    params = inbound_params(remote, "once")
    receive(params)
    receive(params)
    view = thread_of(remote, ALICE)
    assert [m["body"] for m in view["items"]] == ["once", "Are you free tonight?"]


def test_incoming_media_are_links_to_the_media_function(on_azure):
    """Twilio's media URLs need the account's credentials: the client gets the app's own."""
    remote = number()
    sent(remote, ALICE)
    media = "https://api.twilio.com/2010-04-01/Accounts/AC/Messages/MM/Media/ME1"
    params = inbound_params(remote, "", NumMedia="2", MediaUrl0=media, MediaUrl1=media,
                            MediaContentType0="image/jpeg", MediaContentType1="image/jpeg")
    receive(params)
    sid = params["MessageSid"]
    assert thread_of(remote, ALICE)["items"][0]["media_urls"] == [
        f"{ORIGIN}/api/media/{sid}/0", f"{ORIGIN}/api/media/{sid}/1"]


def test_a_thread_whose_media_cannot_be_linked_is_refused_and_stays_unread(
        on_azure, monkeypatch):
    """No public origin to link ``media`` on: a 500 naming the setting, nothing changed."""
    carol = user(f"carol-{secrets.token_hex(4)}")
    remote = number()
    sent(remote, carol)
    media = "https://api.twilio.com/2010-04-01/Accounts/AC/Messages/MM/Media/ME1"
    receive(inbound_params(remote, "", NumMedia="1", MediaUrl0=media,
                           MediaContentType0="image/jpeg"))
    monkeypatch.delenv("WEBSITE_HOSTNAME")
    assert "PUBLIC_BASE_URL" in refused(thread(remote, carol), 500, "misconfigured")["detail"]
    monkeypatch.setenv("WEBSITE_HOSTNAME", "contoso.azurewebsites.net")
    assert listing(carol)["conversations"][0]["unread"] == 1


# --- the list and the pages --------------------------------------------------------


def test_conversations_list_newest_first_with_unread_counts(on_azure):
    carol = user(f"carol-{secrets.token_hex(4)}")
    first, second = number(), number()
    sent(first, carol)
    sent(second, carol)
    receive(inbound_params(first, "one"))
    receive(inbound_params(first, "two"))
    listed = listing(carol)["conversations"]
    assert [c["number"] for c in listed] == [first, second]
    assert (listed[0]["unread"], listed[0]["last_item"]["body"],
            listed[0]["last_item"]["direction"]) == (2, "two", "incoming")
    assert listed[1]["unread"] == 0
    assert (listed[0]["opted_out"], listed[0]["blocked"]) == (False, False)
    newest = thread_of(first, carol)
    assert newest["unread"] == 2  # reading a thread does not mark it read: read does
    assert mark_read(first, carol, newest["items"][1]["sid"]) == {"number": first, "unread": 1}
    assert mark_read(first, carol, newest["items"][0]["sid"])["unread"] == 0
    assert listing(carol)["conversations"][0]["unread"] == 0


def test_messages_arriving_at_once_on_one_thread_all_count(on_azure):
    """60 at once, in random order, half on a second instance: each counted unread once,
    the newest shown. An instance's writes to one summary take turns; instances race
    on the ETag."""
    erin = user(f"erin-{secrets.token_hex(4)}")
    remote = number()
    sent(remote, erin)
    app_settings.cache_clear()
    settings = app_settings()
    now = datetime.now(UTC)
    messages = [sms("SM" + secrets.token_hex(16), "incoming", remote, FROM_NUMBER, f"m{n}",
                        at=now + timedelta(milliseconds=n)) for n in range(60)]

    async def arrive() -> list[str]:
        assert settings.state_connection is not None
        other = connect(settings.state_connection)
        try:
            instances = [store_for(settings), other]
            return await asyncio.gather(*(
                record_incoming(instances[n % 2], settings, message, None)
                for n, message in enumerate(random.sample(messages, len(messages)))))
        finally:
            await other.close()

    assert run(arrive()) == ["attributed"] * 60
    [thread] = listing(erin)["conversations"]
    assert (thread["unread"], thread["last_item"]["body"]) == (60, "m59")


def test_one_instance_writes_a_busy_summary_a_few_times_not_once_per_message(on_azure,
                                                                           monkeypatch):
    frank = user(f"frank-{secrets.token_hex(4)}")
    remote = number()
    sent(remote, frank)
    app_settings.cache_clear()
    settings = app_settings()
    writes: list[str] = []
    original = Store.transact

    async def counted(self, table, partition, ops):
        if table == CONVERSATIONS:
            writes.append(ops[0][0])
        return await original(self, table, partition, ops)
    monkeypatch.setattr(Store, "transact", counted)
    messages = [sms("SM" + secrets.token_hex(16), "incoming", remote, FROM_NUMBER, "hi")
                for _ in range(60)]

    async def arrive() -> list[str]:
        store = store_for(settings)
        assert store is not None
        return await asyncio.gather(*(record_incoming(store, settings, message, None)
                                      for message in messages))

    assert run(arrive()) == ["attributed"] * 60
    assert len(writes) <= 4, writes  # one per message, and their conflicts, before
    assert listing(frank)["conversations"][0]["unread"] == 60


def test_a_request_cancelled_while_its_summary_is_written_takes_no_other_message_down(
        on_azure):
    """A client that hangs up cancels its own request only: the write its message joined
    goes on, for every message waiting on it."""
    name = f"gail-{secrets.token_hex(4)}"
    remote = number()
    sent(remote, user(name))
    app_settings.cache_clear()
    settings = app_settings()
    owner = Caller(name, "aad").owner
    now = datetime.now(UTC)
    messages = [sms("SM" + secrets.token_hex(16), "incoming", remote, FROM_NUMBER, f"m{n}",
                        at=now + timedelta(milliseconds=n)) for n in range(20)]

    async def arrive() -> list[object]:
        store = store_for(settings)
        assert store is not None
        waiting = [asyncio.create_task(threads._summarise(store, owner, m, 1))
                   for m in messages]
        await asyncio.sleep(0)  # each has joined the next write and waits for it
        for task in waiting[::2]:
            task.cancel()
        return await asyncio.gather(*waiting, return_exceptions=True)

    outcomes = run(arrive())
    assert all(isinstance(o, asyncio.CancelledError) for o in outcomes[::2])
    assert outcomes[1::2] == [None] * 10
    [thread] = listing(user(name))["conversations"]
    assert (thread["unread"], thread["last_item"]["body"]) == (20, "m19")


def test_a_thread_is_paged_newest_first(on_azure):
    remote = number()
    for text in ("a", "b", "c"):
        sent(remote, ALICE, body=text)
    page = thread_of(remote, ALICE, limit="2")
    assert [m["body"] for m in page["items"]] == ["c", "b"] and page["next"]
    rest = thread_of(remote, ALICE, limit="2", cursor=page["next"])
    assert [m["body"] for m in rest["items"]] == ["a"] and rest["next"] is None


def test_the_conversation_list_is_paged(on_azure):
    dave = user(f"dave-{secrets.token_hex(4)}")
    remotes = [number() for _ in range(3)]
    for remote in remotes:
        sent(remote, dave)
    page = json.loads(invoke("conversations", request(
        "GET", f"{ORIGIN}/api/conversations?limit=2", headers=dave)).get_body())
    assert [c["number"] for c in page["conversations"]] == remotes[:0:-1]
    rest = json.loads(invoke("conversations", request(
        "GET", f"{ORIGIN}/api/conversations?limit=2&cursor={quote(page['next'])}",
        headers=dave)).get_body())
    assert [c["number"] for c in rest["conversations"]] == remotes[:1] and rest["next"] is None


@pytest.mark.parametrize("query", [{"limit": "0"}, {"limit": "101"}, {"limit": "x"},
                                   {"cursor": "' or 1 eq 1"}])
def test_bad_paging_is_a_400_naming_the_field(on_azure, query):
    remote = number()
    sent(remote, ALICE)
    document = problem(thread(remote, ALICE, **query))
    assert (document["status"], document["field"]) == (400, next(iter(query)))


def test_a_number_that_cannot_be_one_is_a_400(on_azure):
    assert problem(thread("not-a-number", ALICE))["status"] == 400


# --- opt-outs ----------------------------------------------------------------------


def test_stop_blocks_sending_before_twilio_and_start_lifts_it(on_azure, monkeypatch):
    monkeypatch.setenv("SMS_REPLY_MESSAGE", "Thanks, we'll get back to you")
    remote = number()
    sent(remote, ALICE)
    assert replies(receive(inbound_params(remote, " stop "))) == []  # Twilio answers STOP
    before = len(on_azure.messages)
    refused = problem(send(remote, ALICE))
    assert (refused["status"], refused["type"]) == (
        403, "urn:twilio-functions:problem:recipient-opted-out")
    assert len(on_azure.messages) == before  # nothing sent to Twilio
    run(refuse_opted_out(load_settings(), OTHER_LINE, remote))  # only the number STOP reached
    assert replies(receive(inbound_params(remote, "START"))) == []
    sent(remote, ALICE)
    assert replies(receive(inbound_params(remote, "Help"))) == []  # Twilio's help text only
    assert replies(receive(inbound_params(remote, "See you"))) == [
        "Thanks, we'll get back to you"]
    bodies = [m["body"] for m in thread_of(remote, ALICE)["items"]]
    assert bodies[:4] == ["See you", "Help", "Are you free tonight?", "START"]


def test_advanced_opt_outs_verdict_wins(on_azure):
    remote = number()
    receive(inbound_params(remote, "arrêt", OptOutType="STOP"))
    assert problem(send(remote, ALICE))["status"] == 403


def test_twilios_21610_is_the_same_problem_and_is_remembered(on_azure):
    unsubscribed = "+15005550004"  # the sandbox answers 21610, as Twilio's test credentials
    in_store(lambda store: opt_outs.record(store, [FROM_NUMBER], unsubscribed, False,
                                           datetime.now(UTC)))  # forget other tests' 21610
    refused = problem(send(unsubscribed, ALICE))
    assert (refused["status"], refused["type"], refused["twilio_code"]) == (
        403, "urn:twilio-functions:problem:recipient-opted-out", 21610)
    before = on_azure.call_soon(lambda: on_azure.sandbox.requests)
    assert problem(send(unsubscribed, BOB))["status"] == 403
    assert on_azure.call_soon(lambda: on_azure.sandbox.requests) == before  # refused here


def test_the_sandbox_refuses_with_21610_whom_its_stop_opted_out(on_azure):
    remote = number()
    on_azure.call_soon(lambda: on_azure.sandbox.opt_out(FROM_NUMBER, remote, True))
    refused = problem(send(remote, ALICE))
    assert (refused["status"], refused["twilio_code"]) == (403, 21610)
    assert problem(send(remote, ALICE)).get("twilio_code") is None  # now known to the app


# --- who may post --------------------------------------------------------------------


@pytest.mark.parametrize("case", ["unsigned", "wrong-token", "other-account", "no-account"])
def test_unsigned_or_other_account_inbound_is_403_and_stores_nothing(on_azure, case):
    remote = number()
    sent(remote, ALICE)
    params = inbound_params(remote, "STOP", account="AC" + "f0" * 16
                            if case == "other-account" else ACCOUNT_SID)
    if case == "no-account":
        del params["AccountSid"]
    response = receive(params, signed=case != "unsigned",
                       token="another-token" if case == "wrong-token" else AUTH_TOKEN)
    assert problem(response)["status"] == 403
    assert [m["direction"] for m in thread_of(remote, ALICE)["items"]] == ["outgoing"]
    sent(remote, ALICE)  # the STOP it carried changed nothing


# --- retention -----------------------------------------------------------------------


def test_messages_past_the_retention_are_gone(on_azure, monkeypatch):
    monkeypatch.setenv("MESSAGE_RETENTION_DAYS", "7")
    settings = load_settings()
    mallory = Caller(f"mallory-{secrets.token_hex(4)}", "aad")
    remote, now = number(), datetime.now(UTC)
    record_sent(mallory, remote, FROM_NUMBER, "old", now - timedelta(days=8), settings)
    record_sent(mallory, remote, FROM_NUMBER, "recent", now - timedelta(days=6), settings)
    shown = run(thread_for(settings, mallory, remote, message_page({}), now,
                           media_link=lambda sid, index: ""))
    assert [m["body"] for m in shown["items"]] == ["recent"]
    later = now + timedelta(days=2)  # the recent one is past it too
    assert run(list_for(settings, mallory, list_page({}), later))["conversations"] == []
    assert run(purge_expired(settings, later)) >= 3
    owner_key = threads.owner_key(mallory.owner)
    assert in_store(lambda store: threads.item_rows(store, mallory.owner, remote),
                    settings) == []
    assert in_store(lambda store: store.rows("conversations", owner_key), settings) == []
    assert in_store(lambda store: store.rows("contacts", remote), settings) == []


def test_the_nightly_timer_deletes_what_is_past_the_retention(on_azure, monkeypatch, caplog):
    """purge_messages, run as the host runs a timer function: its main, awaited."""
    settings = load_settings()
    oscar = Caller(f"oscar-{secrets.token_hex(4)}", "aad")
    remote, now = number(), datetime.now(UTC)
    record_sent(oscar, remote, FROM_NUMBER, "a month ago", now - timedelta(days=31), settings)
    record_sent(oscar, remote, FROM_NUMBER, "yesterday", now - timedelta(days=1), settings)
    app_settings.cache_clear()  # as invoke() does: this test's environment
    with caplog.at_level(logging.INFO, logger="twilio_functions"):
        run(function_main("purge_messages")(func.TimerRequest(past_due=False)))
    assert "function=purge_messages deleted=" in caplog.text
    kept = in_store(lambda store: threads.item_rows(store, oscar.owner, remote), settings)
    assert [row.fields["Body"] for row in kept] == ["yesterday"]


def test_an_old_send_attributes_nothing(on_azure, monkeypatch):
    monkeypatch.setenv("MESSAGE_RETENTION_DAYS", "7")
    settings = load_settings()
    remote = number()
    record_sent(Caller("erin", "aad"), remote, FROM_NUMBER, "long ago",
                datetime.now(UTC) - timedelta(days=8), settings)
    reply = sms("SM" + secrets.token_hex(16), "incoming", remote, FROM_NUMBER, "hi")
    assert in_store(lambda store: conversations_module.record_incoming(
        store, settings, reply, None), settings) == "unattributed"
