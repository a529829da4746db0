"""Messages create and list as Twilio's REST API answers them (issue 19, rows 9 and 10).

Each test names the Twilio error page or OpenAPI path it holds the sandbox to,
driving it through twilio-python as the app does; and the app's own checks come
first where they can.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import aiohttp
import pytest
from harness import APP_URL, SandboxThread, invoke, request
from harness import refused as app_refused
from storage import storage_env
from test_twilio_sandbox import (
    ACCOUNT_PATH,
    CUSTOMER,
    auth_headers,
    in_thread,
    refused,
    run,
    twilio,
)

from twilio_sandbox import VALID_FROM, TwilioSandbox

CALLBACK = "http://localhost:7071/api/status_callback"


# --- row 9: what Messages create refuses ------------------------------------------------


@pytest.mark.parametrize(("extra", "code"), [
    ({"media_url": [f"https://example.com/{n}.png" for n in range(11)]}, 21623),
    ({"media_url": ["example.com/a.png"]}, 21620),
    ({"media_url": ["https://example.com/a.png", "ftp://example.com/b.png"]}, 21620),
    ({"status_callback": "example.com/status"}, 21609),
    ({"status_callback": "https://my_app.example.com/api/status_callback"}, 21609),
    ({"status_callback": "https://example.com/" + "a" * 4000}, 21609),
], ids=["eleven-media", "media-without-scheme", "media-not-http", "callback-without-scheme",
        "callback-host-underscore", "callback-too-long"])
def test_messages_create_refuses_media_and_callbacks_as_documented(extra: dict[str, Any],
                                                                  code: int) -> None:
    """https://www.twilio.com/docs/api/errors/21623 (up to 10 media files),
    https://www.twilio.com/docs/api/errors/21620 (a URL without http:// or https://),
    https://www.twilio.com/docs/api/errors/21609 (not fully qualified, an underscore in the
    host name, more than 4000 characters)."""

    async def scenario(sandbox: TwilioSandbox) -> None:
        error = await refused(twilio(sandbox).messages.create, to=CUSTOMER, from_=VALID_FROM,
                              body="x", **extra)
        assert (error.status, error.code) == (400, code)
        assert sandbox.messages == []

    run(scenario)


def test_the_app_refuses_a_status_callback_twilio_would_refuse_before_asking(
        app_env: SandboxThread, monkeypatch: pytest.MonkeyPatch) -> None:
    """The app's own checks come first: past 10 media or a media URL that is not https is
    a 400 of its own (test_send_sms.py); a PUBLIC_BASE_URL whose host has an underscore
    would make every StatusCallback a 21609, so the settings refuse it: 500 misconfigured."""
    monkeypatch.setenv("STATE_STORAGE", storage_env()["STATE_STORAGE"])  # callbacks wanted
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://my_app.example.com")
    response = invoke("send_sms", request("POST", f"{APP_URL}/send_sms",
                                          json_body={"to": CUSTOMER, "body": "x"}))
    assert app_refused(response, 500, "misconfigured")["setting"] == "PUBLIC_BASE_URL"
    assert app_env.messages == []


def test_ten_http_media_and_a_local_status_callback_are_taken() -> None:
    async def scenario(sandbox: TwilioSandbox) -> None:
        media = [f"http://example.com/{n}.png" for n in range(10)]
        message = await in_thread(twilio(sandbox).messages.create, to=CUSTOMER,
                                  from_=VALID_FROM, media_url=media, status_callback=CALLBACK)
        assert message.num_media == "10"

    run(scenario, status_callbacks=False)


# --- row 10: listing messages ----------------------------------------------------------


async def _three_sent(sandbox: TwilioSandbox) -> list[str]:
    """Messages sent 2024-05-01 10:00, 2024-05-02 23:30 (GMT), and one never sent."""
    client = twilio(sandbox)
    sids = [(await in_thread(client.messages.create, to=CUSTOMER, from_=VALID_FROM,
                             body=f"{n}")).sid for n in range(3)]
    sent = (datetime(2024, 5, 1, 10, tzinfo=UTC), datetime(2024, 5, 2, 23, 30, tzinfo=UTC))
    for message, moment in zip(sandbox.messages, sent, strict=False):
        message["date_sent"] = format_datetime(moment)  # what the carrier made of it
    return sids


def test_messages_list_filters_by_date_sent() -> None:
    """OpenAPI GET /2010-04-01/Accounts/{AccountSid}/Messages.json: DateSent, DateSent<
    (on and before) and DateSent> (on and after), GMT dates, and the time formats of its
    examples; a message not sent matches none."""

    async def scenario(sandbox: TwilioSandbox) -> None:
        first, second, _unsent = await _three_sent(sandbox)
        client = twilio(sandbox)

        async def listed(**filters: Any) -> list[str]:
            return [m.sid for m in await in_thread(client.messages.list, **filters)]

        assert await listed(date_sent=datetime(2024, 5, 2, tzinfo=UTC)) == [second]
        assert await listed(date_sent_after=datetime(2024, 5, 1, 12, tzinfo=UTC)) == [second]
        assert await listed(date_sent_before=datetime(2024, 5, 2, tzinfo=UTC)) == [first]
        assert await listed(date_sent_after=datetime(2024, 5, 3, tzinfo=UTC)) == []

        async def raw(query: str) -> tuple[int, Any]:
            url = f"{sandbox.base_url}{ACCOUNT_PATH}/Messages.json?{query}"
            async with (aiohttp.ClientSession() as session,
                        session.get(url, headers=auth_headers()) as answer):
                return answer.status, await answer.json()

        for query, expected in [
            ("DateSent>=2024-05-01", [second, first]),  # as the description writes it
            ("DateSent<=2024-05-02", [second, first]),
            ("DateSent=2024-05-01", [first]),
            ("DateSent%3E=Wed,%2001%20May%202024%2011:00:00%20-0000", [second]),
            ("DateSent%3C=05/01/2024%2005:00:00%20MST", [first]),  # 12:00 GMT
            ("DateSent%3E=2024-05-02%2023:30:00.000", [second]),
            ("Status=failed", [_unsent, second, first]),  # no Status filter on Messages
        ]:
            status, page = await raw(query)
            assert status == 200, (query, page)
            assert [m["sid"] for m in page["messages"]] == expected, query
        status, page = await raw("DateSent%3E=2024-05-01&PageSize=1")
        assert "DateSent%3E=2024-05-01" in page["next_page_uri"]  # the filter stays on
        status, error = await raw("DateSent=yesterday")
        assert (status, error["code"]) == (400, 20001)

    run(scenario, status_callbacks=False)


def test_the_next_page_follows_the_last_one_read_whatever_arrived_since() -> None:
    """OpenAPI examples: next_page_uri ``...&Page=1&PageToken=PA<last SID>``; ``Page`` alone
    "is simply for client state". Offset paging would show the last one read again."""

    async def scenario(sandbox: TwilioSandbox) -> None:
        client = twilio(sandbox)

        async def send(n: int) -> str:
            return (await in_thread(client.messages.create, to=CUSTOMER, from_=VALID_FROM,
                                    body=f"{n}")).sid

        m1, m2, m3, m4 = [await send(n) for n in range(4)]
        page = await in_thread(client.messages.page, page_size=2)
        assert [m.sid for m in page] == [m4, m3]
        m5 = await send(5)  # arrives while the reader is on page 0
        following = await in_thread(page.next_page)
        assert [m.sid for m in following] == [m2, m1]
        previous = await in_thread(following.previous_page)
        assert [m.sid for m in previous] == [m4, m3]
        assert [m.sid for m in await in_thread(client.messages.list, page_size=2)] == [
            m5, m4, m3, m2, m1]
        url = f"{sandbox.base_url}{ACCOUNT_PATH}/Messages.json?PageToken=PAnot-a-sid"
        async with (aiohttp.ClientSession() as session,
                    session.get(url, headers=auth_headers()) as answer):
            # https://www.twilio.com/docs/api/errors/21481
            assert (answer.status, (await answer.json())["code"]) == (400, 21481)

    run(scenario, status_callbacks=False)
