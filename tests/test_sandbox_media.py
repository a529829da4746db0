"""The sandbox keeps inbound media as Twilio does: Media resources behind Basic Auth.

Twilio stores what a texter sends, "enforces HTTP Basic Authentication for all media
URLs", serves the media at the resource's URL without an extension and its metadata
with ``.json`` (https://www.twilio.com/docs/messaging/api/media-resource), by a
redirect to a short-lived URL (https://help.twilio.com/articles/223183748). The
texter's files come as base64 or as a URL the sandbox fetches once.
"""

from __future__ import annotations

import base64
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from stub_server import serve
from test_sandbox_console import ACCOUNT_SID, AUTH_TOKEN, TEXTER, App, act, run

from twilio_sandbox import TwilioSandbox
from twilio_sandbox.media import MAX_JSON_BYTES, MAX_MESSAGE_BYTES, MediaStore, Upload

AUTH = {"Authorization": aiohttp.encode_basic_auth(ACCOUNT_SID, AUTH_TOKEN)}
OTHER_ACCOUNT = "AC" + "6" * 32
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


def encoded(body: bytes, **fields: str) -> dict[str, str]:
    return {"data": base64.b64encode(body).decode(), **fields}


async def texted(session: aiohttp.ClientSession, app: App, **data: Any) -> dict[str, str]:
    """An SMS with media arrives: the webhook's parameters, as the app got them."""
    status, _, outcome = await act(session, "/_sandbox/inbound/sms", {"from": TEXTER, **data})
    assert status == 200, outcome
    return app.seen[-1]["params"]


async def get(session: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None,
              **options: Any) -> tuple[int, dict[str, str], bytes]:
    async with session.get(url, headers=headers, **options) as answer:
        return answer.status, dict(answer.headers), await answer.read()


def test_an_mms_arrives_with_media_urls_of_the_sandboxs_own() -> None:
    async def scenario(sandbox: TwilioSandbox, app: App, session: aiohttp.ClientSession) -> None:
        params = await texted(session, app, body="look", media=[
            encoded(PNG, content_type="image/png"), encoded(b"BEGIN:VCARD", filename="me.vcf")])
        sid = params["MessageSid"]
        assert sid.startswith("MM") and len(sid) == 34
        assert (params["NumMedia"], params["MediaContentType0"], params["MediaContentType1"]) == (
            "2", "image/png", "text/vcard")
        prefix = f"{sandbox.base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}/Media/ME"
        assert params["MediaUrl0"].startswith(prefix) and params["MediaUrl1"].startswith(prefix)
        message = sandbox.messages[0]  # then the app's reply
        assert (message["sid"], message["num_media"]) == (sid, "2")
        assert message["uri"].endswith(f"/Messages/{sid}.json")
        assert message["request"]["MediaUrl"] == [params["MediaUrl0"], params["MediaUrl1"]]
        # With the credentials: a redirect to a URL that needs none, then the bytes.
        status, headers, _ = await get(session, params["MediaUrl0"], AUTH, allow_redirects=False)
        assert status == 307 and headers["Location"].startswith(f"{sandbox.base_url}/_sandbox/")
        status, headers, body = await get(session, params["MediaUrl0"], AUTH)
        assert (status, headers["Content-Type"], body) == (200, "image/png", PNG)
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Content-Security-Policy"] == "sandbox"
        # Served without credentials: no other site's page may embed it.
        assert headers["Cross-Origin-Resource-Policy"] == "same-origin"

    run(scenario)


def test_media_urls_need_the_accounts_credentials() -> None:
    async def scenario(sandbox: TwilioSandbox, app: App, session: aiohttp.ClientSession) -> None:
        url = (await texted(session, app, media=[encoded(PNG)]))["MediaUrl0"]
        for headers in (None, {"Authorization": aiohttp.encode_basic_auth(ACCOUNT_SID, "no")}):
            for asked in (url, f"{url}.json", url.rsplit("/", 1)[0] + ".json"):
                async with session.get(asked, headers=headers, allow_redirects=False) as answer:
                    assert answer.status == 401
                    assert (await answer.json())["code"] == 20003
        other = url.replace(ACCOUNT_SID, OTHER_ACCOUNT)
        assert (await get(session, other, AUTH))[0] == 404
        elsewhere = url.replace("/Messages/MM", "/Messages/MN")
        assert (await get(session, elsewhere, AUTH))[0] == 404

    run(scenario)


def test_metadata_list_and_delete_answer_as_twilio() -> None:
    async def scenario(sandbox: TwilioSandbox, app: App, session: aiohttp.ClientSession) -> None:
        params = await texted(session, app, media=[encoded(PNG, content_type="image/png"),
                                                   encoded(b"gif", content_type="image/gif")])
        sid, first = params["MessageSid"], params["MediaUrl0"]
        async with session.get(f"{first}.json", headers=AUTH) as answer:
            assert answer.status == 200
            resource = await answer.json()
        media_sid = first.rsplit("/", 1)[1]
        assert resource == {
            "account_sid": ACCOUNT_SID, "content_type": "image/png",
            "date_created": resource["date_created"], "date_updated": resource["date_created"],
            "parent_sid": sid, "sid": media_sid, "uri": first.removeprefix(sandbox.base_url)
            + ".json"}
        listed = first.rsplit("/", 1)[0] + ".json"
        async with session.get(listed, headers=AUTH) as answer:
            page = await answer.json()
        assert [m["sid"] for m in page["media_list"]] == [
            media_sid, params["MediaUrl1"].rsplit("/", 1)[1]]
        async with session.delete(f"{first}.json", headers=AUTH) as answer:
            assert answer.status == 204
        assert (await get(session, first, AUTH))[0] == 404
        assert (await get(session, f"{sandbox.base_url}/_sandbox/media/{media_sid}"))[0] == 404
        async with session.get(listed, headers=AUTH) as answer:
            assert len((await answer.json())["media_list"]) == 1

    run(scenario)


class Files:
    """A web server for the texter's files: what the sandbox fetches, counted."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        self.url = ""

    async def file(self, request: web.Request) -> web.StreamResponse:
        self.hits.append(request.path)
        name = request.match_info["name"]
        if name == "big.bin":
            return web.Response(body=b"x" * (MAX_MESSAGE_BYTES + 1))
        if name == "missing.png":
            return web.Response(status=404)
        if name == "moved.png":
            raise web.HTTPFound("/files/cat.png")
        return web.Response(body=PNG, content_type="image/png")

    async def start(self) -> web.AppRunner:
        app = web.Application()
        app.router.add_get("/files/{name}", self.file)
        runner, base = await serve(app)
        self.url = f"{base}/files/"
        return runner


def with_files(scenario: Any) -> None:
    files = Files()

    async def wrapped(sandbox: TwilioSandbox, app: App, session: aiohttp.ClientSession) -> None:
        runner = await files.start()
        try:
            await scenario(sandbox, app, session, files)
        finally:
            await runner.cleanup()

    run(wrapped)


def test_a_media_url_is_fetched_once_and_served_from_the_sandbox() -> None:
    async def scenario(sandbox: TwilioSandbox, app: App, session: aiohttp.ClientSession,
                       files: Files) -> None:
        params = await texted(session, app, media_url=files.url + "moved.png")
        assert files.hits == ["/files/moved.png", "/files/cat.png"]
        assert params["MediaContentType0"] == "image/png"
        for _ in range(2):
            assert (await get(session, params["MediaUrl0"], AUTH))[2] == PNG
        assert len(files.hits) == 2  # served from what the sandbox kept

    with_files(scenario)


@pytest.mark.parametrize(("name", "status", "says"), [
    ("missing.png", 502, "answered 404"), ("big.bin", 502, "over the 5242880 bytes")])
def test_a_media_url_that_fails_is_refused_and_nothing_arrives(name: str, status: int,
                                                              says: str) -> None:
    async def scenario(sandbox: TwilioSandbox, app: App, session: aiohttp.ClientSession,
                       files: Files) -> None:
        code, _, problem = await act(session, "/_sandbox/inbound/sms",
                                     {"from": TEXTER, "media_url": files.url + name})
        assert code == status and says in problem["detail"], problem
        assert app.seen == [] and sandbox.messages == []

    with_files(scenario)


@pytest.mark.parametrize("media", [
    {"media": [{"data": "not base64!"}]},
    {"media": [encoded(b"x", content_type="no type")]},
    {"media": [{"content_type": "image/png"}]},
    {"media": "a file"},
    {"media": [encoded(b"x")] * 6, "media_url": ["https://example.com/a.png"] * 5},
    {"media": [encoded(b"x" * (MAX_MESSAGE_BYTES // 2 + 1))] * 2},
    {"media": [{"data": "A" * ((MAX_MESSAGE_BYTES + 2) // 3 * 4 + 4)}]},
    {"media_url": ["file:///etc/passwd"]},
    {"media_url": "ftp://example.com/a.png"},
])
def test_media_the_sandbox_cannot_take_are_400(media: dict[str, Any]) -> None:
    async def scenario(sandbox: TwilioSandbox, app: App, session: aiohttp.ClientSession) -> None:
        status, _, problem = await act(session, "/_sandbox/inbound/sms", {"from": TEXTER,
                                                                        **media})
        assert status == 400, problem
        assert app.seen == [] and sandbox.messages == []

    run(scenario)


def test_a_body_over_what_a_message_takes_is_not_read() -> None:
    async def scenario(sandbox: TwilioSandbox, app: App, session: aiohttp.ClientSession) -> None:
        data = {"from": TEXTER, "media": [{"data": "A" * MAX_JSON_BYTES}]}
        async with session.post("/_sandbox/inbound/sms", json=data) as answer:
            assert answer.status == 413
        assert app.seen == [] and sandbox.messages == []

    run(scenario)


def test_a_texters_page_is_never_run_as_the_sandboxs() -> None:
    async def scenario(sandbox: TwilioSandbox, app: App, session: aiohttp.ClientSession) -> None:
        page = b"<script>fetch('/_sandbox/reset', {method: 'POST'})</script>"
        url = (await texted(session, app, media=[encoded(page, content_type="text/html")]))[
            "MediaUrl0"]
        status, headers, body = await get(session, url, AUTH)
        assert (status, body, headers["Content-Type"]) == (200, page, "text/html")
        assert headers["Content-Security-Policy"] == "sandbox"  # an opaque origin: no controls
        assert headers["X-Content-Type-Options"] == "nosniff"

    run(scenario)


def test_reset_forgets_the_media() -> None:
    async def scenario(sandbox: TwilioSandbox, app: App, session: aiohttp.ClientSession) -> None:
        url = (await texted(session, app, media=[encoded(PNG)]))["MediaUrl0"]
        sandbox.reset()
        assert (await get(session, url, AUTH))[0] == 404
        assert sandbox.media.total_bytes == 0

    run(scenario)


def test_media_kept_are_bounded_by_the_history_and_in_bytes() -> None:
    store = MediaStore(history=3, max_bytes=1000)
    kept = [store.keep(ACCOUNT_SID, f"MM{n:032x}", [Upload("image/png", b"x" * 100)])[0]
            for n in range(5)]
    assert [store.find(m.sid) is not None for m in kept] == [False, False, True, True, True]
    assert store.total_bytes == 300
    large = store.keep(ACCOUNT_SID, "MM" + "f" * 32, [Upload("image/png", b"y" * 900)])
    assert store.total_bytes == 1000 and store.of(ACCOUNT_SID, "MM" + "f" * 32) == large
    assert [store.find(m.sid) is not None for m in kept] == [False] * 4 + [True]

