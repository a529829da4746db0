"""What a user does with a thread: read up to an item, delete it, block its contact; and
what a page of the list costs (real Table Storage, Azurite; the function in-process).
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import azure.functions as func
import pytest
from harness import FROM_NUMBER, invoke, problem
from test_two_way_sms import (  # noqa: F401 - on_azure: the autouse fixture
    ORIGIN,
    in_store,
    inbound_params,
    listing,
    mark_read,
    on_azure,
    receive,
    send,
    sent,
    thread,
    thread_of,
    user,
)
from unique import number

from bench.conversation_list import fill
from shared import contacts, threads
from shared.conversations import list_for, list_page
from shared.identity import Caller
from shared.settings import load_settings
from shared.store import Store
from shared.threads import Item


def someone() -> tuple[Caller, dict[str, str]]:
    name = f"tess-{secrets.token_hex(4)}"
    return Caller(name, "aad"), user(name)


def act(method: str, remote: str, headers: dict[str, str], action: str | None = None,
        body: bytes = b"", content_type: str = "application/json") -> func.HttpResponse:
    """``method`` on conversations/{number}[/{action}], routed as the host routes it."""
    path = f"{ORIGIN}/api/conversations/{quote(remote)}" + (f"/{action}" if action else "")
    route = {"number": remote, **({"action": action} if action else {})}
    return invoke("conversations", func.HttpRequest(
        method, path, headers={**headers, "Content-Type": content_type}, params={},
        route_params=route, body=body))


def keep(caller: Caller, item: Item, unread: bool) -> None:
    in_store(lambda store: threads.keep(store, caller.owner, item, unread=unread))


# --- items of every kind ------------------------------------------------------------------


def test_a_thread_shows_calls_and_voicemails_with_their_links():
    caller, headers = someone()
    remote, now = number(), datetime.now(UTC)
    missed = Item("CA" + secrets.token_hex(16), "call", "incoming", remote, FROM_NUMBER,
                  now - timedelta(minutes=2), status="missed")
    voicemail = Item("RE" + secrets.token_hex(16), "voicemail", "incoming", remote,
                     FROM_NUMBER, now - timedelta(minutes=1), duration=9,
                     call_sid=missed.sid, transcription="call me back",
                     transcription_status="completed")
    keep(caller, missed, True)
    keep(caller, voicemail, True)
    view = thread_of(remote, headers)
    assert view["unread"] == 2
    assert [(i["kind"], i["sid"]) for i in view["items"]] == [
        ("voicemail", voicemail.sid), ("call", missed.sid)]
    left, call = view["items"]
    assert (left["duration"], left["transcription"], left["transcription_status"],
            left["recording_url"], left["from"], left["to"]) == (
        9, "call me back", "completed", f"{ORIGIN}/api/media/{voicemail.sid}/0", remote,
        FROM_NUMBER)
    assert (call["status"], call["duration"]) == ("missed", None)
    [listed] = listing(headers)["conversations"]
    assert listed["last_item"] == {"kind": "voicemail", "sid": voicemail.sid,
                                   "direction": "incoming", "status": None, "body": None,
                                   "at": left["at"]}


# --- read ---------------------------------------------------------------------------------


def test_read_up_to_an_item_leaves_what_is_newer_unread():
    _, headers = someone()
    remote = number()
    sent(remote, headers)
    replies = [inbound_params(remote, f"r{n}") for n in range(3)]
    for reply in replies:
        receive(reply)
    assert mark_read(remote, headers, replies[0]["MessageSid"])["unread"] == 2
    assert thread_of(remote, headers)["unread"] == 2
    assert mark_read(remote, headers, replies[2]["MessageSid"])["unread"] == 0


@pytest.mark.parametrize(("body", "field"), [
    (b'{"up_to": "SM' + b"0" * 32 + b'"}', "up_to"), (b'{"up_to": "hello"}', "up_to"),
    (b"{}", "up_to"), (b'{"up_to": "x", "also": 1}', "also")])
def test_read_refuses_what_is_not_an_item_of_the_thread(body, field):
    _, headers = someone()
    remote = number()
    sent(remote, headers)
    document = problem(act("POST", remote, headers, "read", body))
    assert (document["status"], document["field"]) == (400, field)


def test_another_users_thread_is_404_to_every_action():
    _, alice = someone()
    _, bob = someone()
    remote = number()
    sid = sent(remote, alice)
    assert problem(act("POST", remote, bob, "read", json.dumps({"up_to": sid}).encode())
                   )["status"] == 404
    assert problem(act("DELETE", remote, bob))["status"] == 404
    assert thread_of(remote, alice)["items"][0]["sid"] == sid


def test_routes_and_methods_there_are_none_at():
    _, headers = someone()
    remote = number()
    assert problem(act("GET", remote, headers, "archive"))["status"] == 404
    assert problem(act("PATCH", remote, headers))["status"] == 405
    assert problem(act("GET", remote, headers, "read"))["status"] == 405
    assert problem(invoke("conversations", func.HttpRequest(
        "DELETE", f"{ORIGIN}/api/conversations", headers=headers, params={},
        route_params={}, body=b"")))["status"] == 405


# --- delete ---------------------------------------------------------------------------------


def test_deleting_a_thread_deletes_its_items_locators_and_rows():
    caller, headers = someone()
    remote = number()
    sent(remote, headers)
    call = Item("CA" + secrets.token_hex(16), "call", "outgoing", remote, FROM_NUMBER,
                datetime.now(UTC), status="completed", duration=3)
    keep(caller, call, False)
    assert act("DELETE", remote, headers).status_code == 204
    assert problem(thread(remote, headers))["status"] == 404
    assert listing(headers)["conversations"] == []
    assert in_store(lambda store: threads.item_rows(store, caller.owner, remote)) == []
    assert in_store(lambda store: store.rows(  # the sends' deliveries went with them
        threads.CONVERSATIONS, threads.owner_key(caller.owner), start=threads.DELIVERY,
        stop="delivery}")) == []
    assert in_store(lambda store: store.get(threads.ITEMS, call.sid, "item")) is None
    assert in_store(lambda store: threads.find(store, caller.owner, call.sid)) is None
    assert problem(act("DELETE", remote, headers))["status"] == 404  # gone: nothing to delete
    sent(remote, headers)  # writing again starts a new thread
    assert len(thread_of(remote, headers)["items"]) == 1


def test_a_thread_of_more_than_a_transaction_is_deleted_whole():
    caller, headers = someone()
    remote, now = number(), datetime.now(UTC)

    async def many(store: Store) -> None:
        for n in range(230):
            await threads.keep(store, caller.owner, Item(
                "SM" + secrets.token_hex(16), "sms", "incoming", remote, FROM_NUMBER,
                now - timedelta(seconds=n), body=str(n)), unread=False)
    in_store(many)
    assert act("DELETE", remote, headers).status_code == 204
    assert in_store(lambda store: threads.item_rows(store, caller.owner, remote)) == []


# --- block ----------------------------------------------------------------------------------


def test_a_blocked_contacts_messages_are_kept_but_not_unread_and_sends_still_go():
    _, headers = someone()
    remote = number()
    sent(remote, headers)
    assert act("PUT", remote, headers, "block").status_code == 204
    assert act("PUT", remote, headers, "block").status_code == 204  # idempotent
    receive(inbound_params(remote, "let me in"))
    view = thread_of(remote, headers)
    assert (view["blocked"], view["unread"], view["items"][0]["body"]) == (True, 0, "let me in")
    assert listing(headers)["conversations"][0]["blocked"] is True
    assert send(remote, headers).status_code == 201
    assert act("DELETE", remote, headers, "block").status_code == 204
    assert act("DELETE", remote, headers, "block").status_code == 204
    receive(inbound_params(remote, "thanks"))
    view = thread_of(remote, headers)
    assert (view["blocked"], view["unread"]) == (False, 1)


def test_a_number_without_a_thread_can_be_blocked_and_its_thread_starts_blocked():
    caller, headers = someone()
    remote = number()
    assert act("PUT", remote, headers, "block").status_code == 204
    assert in_store(lambda store: contacts.is_blocked(store, caller.owner, remote))
    sent(remote, headers)
    assert thread_of(remote, headers)["blocked"] is True


def test_opted_out_shows_on_the_list_and_the_thread():
    _, headers = someone()
    remote = number()
    sent(remote, headers)
    receive(inbound_params(remote, "STOP"))
    assert thread_of(remote, headers)["opted_out"] is True
    assert listing(headers)["conversations"][0]["opted_out"] is True


# --- the list's cost ---------------------------------------------------------------------------


def test_a_cursor_is_url_safe_and_garbage_is_a_400():
    _, headers = someone()
    remotes = [number() for _ in range(3)]
    for remote in remotes:
        sent(remote, headers)
    page = json.loads(invoke("conversations", func.HttpRequest(
        "GET", f"{ORIGIN}/api/conversations?limit=1", headers=headers, params={"limit": "1"},
        route_params={}, body=b"")).get_body())
    assert not set(page["next"]) & set("+/=%")
    for garbage in ("!!", "YWN0aXZpdHl8", page["next"] + "A"):
        response = invoke("conversations", func.HttpRequest(
            "GET", f"{ORIGIN}/api/conversations", headers=headers,
            params={"cursor": garbage}, route_params={}, body=b""))
        assert problem(response)["field"] == "cursor"


def test_listing_2000_threads_reads_a_page_and_a_constant(monkeypatch):
    """limit=20 of 2,000 threads: 21 activity rows, and a few calls besides (the opt-outs of
    the page's lines), however many threads there are."""
    settings = load_settings()
    caller = Caller(f"uli-{secrets.token_hex(4)}", "aad")
    now = datetime.now(UTC)
    in_store(lambda store: fill(store, caller, 2000, now, (FROM_NUMBER, "+15005550010")),
             settings)

    calls: list[str] = []
    rows_read: list[int] = []
    for name in ("get", "rows", "rows_keyed", "insert", "replace", "upsert", "delete",
                 "transact"):
        original = getattr(Store, name)

        async def counted(self, *args, original=original, name=name, **kwargs):
            calls.append(name)
            result = await original(self, *args, **kwargs)
            if isinstance(result, list):
                rows_read.append(len(result))
            return result
        monkeypatch.setattr(Store, name, counted)

    async def page(store: Store) -> dict:
        return await list_for(settings, caller, list_page({"limit": "20"}), now)
    shown = in_store(page, settings)
    assert len(shown["conversations"]) == 20 and shown["next"]
    assert calls.count("rows") == 1 and rows_read[0] == 21  # the page and one more
    assert len(calls) <= 1 + 2 * 2  # + each line's opt-outs (20 numbers: 2 queries a line)
    assert sum(rows_read) <= 21 + 20
