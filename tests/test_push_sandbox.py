"""The Notification Hubs double, over loopback HTTP as the app reaches it: mounted in the
Twilio sandbox's server under ``/notificationhubs/``, every request signed with a SAS
token made here the way Microsoft's Python sample makes one (not by the double's code)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import time
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import pytest
from test_sandbox_console import read_events

from devhost import launcher
from push_sandbox import (
    DEFAULT_HUB,
    FULL_RULE,
    LISTEN_RULE,
    PREFIX,
    NotificationHubsDouble,
    Rule,
    build_app,
)
from twilio_sandbox import TwilioSandbox

ACCOUNT_SID, AUTH_TOKEN = "AC" + "1" * 32, "2" * 32
API = "api-version=2020-06"
APNS_TOKEN = "ab" * 32
JSON = {"Content-Type": "application/json"}


def sas(uri: str, rule: str, key: str, expiry: int | None = None) -> str:
    """Microsoft's sample (azure-notificationhubs-samples, notificationhubs-rest-python)."""
    expiry = expiry if expiry is not None else int(time.time()) + 300
    encoded = urllib.parse.quote(uri, "").lower()
    digest = hmac.new(key.encode("utf-8"), f"{encoded}\n{expiry}".encode(), hashlib.sha256)
    signature = urllib.parse.quote(base64.b64encode(digest.digest()).decode(), "")
    return f"SharedAccessSignature sr={encoded}&sig={signature}&se={expiry}&skn={rule}"


class Hub:
    """The app's side: a hub's URL and a rule to sign with."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, double:
                 NotificationHubsDouble, hub: str = DEFAULT_HUB, rule: str = FULL_RULE) -> None:
        self.session, self.double, self.rule = session, double, rule
        self.endpoint = f"{base_url}{PREFIX}"
        self.url = f"{self.endpoint}{hub}"

    def auth(self, **changes: Any) -> dict[str, str]:
        rule = changes.get("rule", self.rule)
        key = changes.get("key", self.double.rules[rule].key if rule in self.double.rules
                          else "x")
        return {"Authorization": sas(changes.get("uri", self.url), rule, key,
                                     changes.get("expiry"))}

    async def call(self, method: str, path: str, body: Any = None,
                   headers: dict[str, str] | None = None, raw: bytes | None = None,
                   **auth: Any) -> tuple[int, str, dict[str, str]]:
        data = raw if raw is not None else (None if body is None else json.dumps(body))
        sent = {**JSON, **self.auth(**auth), **(headers or {})}
        async with self.session.request(method, f"{self.url}{path}", data=data,
                                        headers=sent) as answer:
            return answer.status, await answer.text(), dict(answer.headers)

    async def put(self, installation_id: str, **fields: Any) -> int:
        body = {"installationId": installation_id, "platform": "fcmv1",
                "pushChannel": f"fcm-{installation_id}", **fields}
        status, _, _ = await self.call("PUT", f"/installations/{installation_id}?{API}", body)
        return status

    async def send(self, kind: str, body: Any, tags: str | None = None,
                   headers: dict[str, str] | None = None) -> tuple[int, str, dict[str, str]]:
        extra = {"ServiceBusNotification-Format": kind, **(headers or {})}
        if tags is not None:
            extra["ServiceBusNotification-Tags"] = tags
        return await self.call("POST", f"/messages/?{API}", body,
                               {**extra, "Content-Type": "application/json;charset=utf-8"})


Scenario = Callable[[Hub, NotificationHubsDouble, aiohttp.ClientSession], Awaitable[None]]


def run(scenario: Scenario, **options: Any) -> None:
    async def main() -> None:
        double = NotificationHubsDouble(**options)
        sandbox = TwilioSandbox(accounts={ACCOUNT_SID: AUTH_TOKEN}, fetch_twiml=False)
        sandbox.mount(PREFIX, build_app(double))
        async with sandbox, aiohttp.ClientSession(sandbox.base_url) as session:
            await scenario(Hub(session, sandbox.base_url, double), double, session)
    asyncio.run(main())


def unique(prefix: str = "dev") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


FCM = {"message": {"notification": {"title": "New message"}, "data": {"thread": "+1415"}}}


# --- installations -------------------------------------------------------------------


def test_an_installation_is_put_read_replaced_and_deleted() -> None:
    async def scenario(hub: Hub, double: NotificationHubsDouble, _: Any) -> None:
        device = unique()
        path = f"/installations/{device}?{API}"
        assert await hub.put(device, tags=["owner:abc"]) == 200
        status, text, _ = await hub.call("GET", path)
        assert status == 200
        assert json.loads(text) | {"lastUpdate": None} == {
            "installationId": device, "platform": "fcmv1", "pushChannel": f"fcm-{device}",
            "tags": ["owner:abc"], "lastUpdate": None}
        assert await hub.put(device, platform="APNS", pushChannel=APNS_TOKEN) == 200
        assert double.installations(DEFAULT_HUB)[device]["platform"] == "apns"
        assert double.installations(DEFAULT_HUB)[device]["tags"] == []
        assert (await hub.call("DELETE", path))[0] == 204
        assert (await hub.call("GET", path))[0] == 404
        assert (await hub.call("DELETE", path))[0] == 204  # absent: 204 all the same
    run(scenario)


def test_a_patch_adds_and_removes_tags_and_a_missing_installation_is_404() -> None:
    async def scenario(hub: Hub, double: NotificationHubsDouble, _: Any) -> None:
        device = unique()
        path = f"/installations/{device}?{API}"
        assert (await hub.call("PATCH", path, [{"op": "add", "path": "/tags",
                                                "value": "a"}]))[0] == 404
        await hub.put(device, tags=["old"])
        status, _, _ = await hub.call("PATCH", path, [
            {"op": "add", "path": "/tags", "value": "new"},
            {"op": "remove", "path": "/tags/old"},
            {"op": "replace", "path": "/pushChannel", "value": "fresh"}])
        assert status == 204  # update-installation's "Response codes"
        kept = double.installations(DEFAULT_HUB)[device]
        assert (kept["tags"], kept["pushChannel"]) == (["new"], "fresh")
        assert (await hub.call("PATCH", path, [{"op": "move", "path": "/tags"}]))[0] == 400
    run(scenario)


@pytest.mark.parametrize(("fields", "said"), [
    ({"platform": "gcm"}, "retired"),
    ({"platform": "wns"}, "plays apns and fcmv1"),
    ({"pushChannel": ""}, "pushChannel"),
    ({"platform": "apns", "pushChannel": "not-hex"}, "APNs device token"),
    ({"tags": [f"t{n}" for n in range(61)]}, "at most 60"),
    ({"tags": ["x" * 121]}, "no tag"),
    ({"tags": ["owner abc"]}, "no tag"),
    ({"installationId": "another"}, "match"),
    ({"colour": "red"}, "Unknown"),
    # tags is an array of strings: not a number, nor text read letter by letter, nor an
    # object read key by key; a template's tags alike.
    ({"tags": 5}, "array of tags"),
    ({"tags": "owner:abc"}, "array of tags"),
    ({"tags": {"owner:abc": True}}, "array of tags"),
    ({"tags": ""}, "array of tags"),
    ({"templates": {"main": {"body": "{}", "tags": "abc"}}}, "templates.main.tags must be"),
])
def test_an_installation_that_breaks_the_rules_is_400_in_xml(fields: dict[str, Any],
                                                              said: str) -> None:
    async def scenario(hub: Hub, double: NotificationHubsDouble, _: Any) -> None:
        device = unique()
        body = {"installationId": device, "platform": "fcmv1", "pushChannel": "t", **fields}
        status, text, headers = await hub.call("PUT", f"/installations/{device}?{API}", body)
        assert status == 400, text
        assert headers["Content-Type"].startswith("application/xml")
        assert text.startswith("<Error><Code>400</Code><Detail>") and said in text
        assert double.installations(DEFAULT_HUB) == {}
    run(scenario)


def test_sixty_tags_of_120_characters_are_taken() -> None:
    async def scenario(hub: Hub, double: NotificationHubsDouble, _: Any) -> None:
        tags = [f"{n:02d}_@#.:-" + "x" * 112 for n in range(60)]
        assert {len(tag) for tag in tags} == {120}
        assert await hub.put(unique(), tags=tags) == 200
    run(scenario)


# --- the SAS token ---------------------------------------------------------------------


def test_tokens_are_checked_as_notification_hubs_checks_them() -> None:
    async def scenario(hub: Hub, double: NotificationHubsDouble,
                       session: aiohttp.ClientSession) -> None:
        device = unique()
        path = f"/installations/{device}?{API}"
        wrong_key = await hub.call("GET", path, key="not-the-key")
        expired = await hub.call("GET", path, expiry=int(time.time()) - 1)
        other_hub = await hub.call("GET", path, uri=f"{hub.endpoint}another-hub")
        unknown_rule = await hub.call("GET", path, rule="NoSuchRule")
        for status, text, _ in (wrong_key, expired, other_hub, unknown_rule):
            assert status == 401 and "<Code>401</Code>" in text
        assert "ExpiredToken" in expired[1] and "InvalidAudience" in other_hub[1]
        async with session.get(f"{hub.url}{path}") as answer:
            assert answer.status == 401
        # A namespace-wide token covers every hub; a hub that does not exist is 404.
        assert (await hub.call("GET", path, uri=hub.endpoint))[0] == 404
        status, _, _ = await hub.call("GET", f"/installations/{device}?{API}",
                                      uri=f"{hub.endpoint}nohub")
        assert status == 401
        missing_version = await hub.call("GET", f"/installations/{device}")
        assert missing_version[0] == 400 and "api-version" in missing_version[1]
        # The listen rule registers devices but may not send.
        listen = {"rule": LISTEN_RULE}
        body = {"installationId": device, "platform": "fcmv1", "pushChannel": "t"}
        assert (await hub.call("PUT", path, body, **listen))[0] == 200
        status, text, _ = await hub.call(
            "POST", f"/messages/?{API}", FCM, {"ServiceBusNotification-Format": "fcmv1"},
            **listen)
        assert status == 401 and "Send right" in text
        assert double.pushes == type(double.pushes)()
    run(scenario)


def test_a_key_never_appears_in_a_refusal() -> None:
    async def scenario(hub: Hub, double: NotificationHubsDouble, _: Any) -> None:
        status, text, _ = await hub.call("GET", f"/installations/x?{API}", key="wrong")
        assert status == 401
        assert all(rule.key not in text for rule in double.rules.values())
    run(scenario)


# --- sends -------------------------------------------------------------------------------


def test_a_send_reaches_only_the_devices_its_tags_name_with_their_payloads() -> None:
    async def scenario(hub: Hub, double: NotificationHubsDouble, _: Any) -> None:
        mine, also_mine, theirs, iphone = unique(), unique(), unique(), unique()
        await hub.put(mine, tags=["owner:abc"])
        await hub.put(also_mine, tags=["owner:abc", "beta"])
        await hub.put(theirs, tags=["owner:xyz"])
        await hub.put(iphone, platform="apns", pushChannel=APNS_TOKEN, tags=["owner:abc"])
        status, text, headers = await hub.send("fcmv1", FCM, "owner:abc")
        assert (status, text) == (201, "") and "Location" not in headers  # Free tier
        assert [push["payload"] for push in double.received(mine)] == [
            {**FCM["message"], "token": f"fcm-{mine}"}]
        assert len(double.received(also_mine)) == 1
        assert double.received(theirs) == [] and double.received(iphone) == []
        aps = {"aps": {"alert": {"title": "Missed call"}}, "thread": "+1415"}
        status, _, _ = await hub.send("apple", aps, "owner:abc || owner:xyz",
                                      {"apns-push-type": "alert", "apns-priority": "10"})
        assert status == 201
        [push] = double.received(iphone)
        assert push["payload"] == aps and push["platform"] == "apns"
        assert push["headers"] == {"apns-push-type": "alert", "apns-priority": "10"}
        await hub.send("fcmv1", FCM, "owner:abc && !beta")
        await hub.send("fcmv1", FCM, f"$InstallationId:{{{theirs}}}")
        assert (len(double.received(mine)), len(double.received(also_mine)),
                len(double.received(theirs))) == (2, 1, 1)
        await hub.send("fcmv1", FCM)  # no tags: every fcmv1 device
        assert (len(double.received(mine)), len(double.received(theirs))) == (3, 2)
    run(scenario)


def test_a_template_send_expands_each_devices_template() -> None:
    async def scenario(hub: Hub, double: NotificationHubsDouble, _: Any) -> None:
        android, iphone = unique(), unique()
        await hub.put(android, tags=["owner:t"], templates={"main": {
            "body": '{"message": {"notification": {"body": "$(text)"}, '
                    '"data": {"n": "#(n)"}}}'}})
        await hub.put(iphone, platform="apns", pushChannel=APNS_TOKEN, tags=["owner:t"],
                      templates={"main": {"body": '{"aps": {"alert": "$(text)", "badge": #(n)}}',
                                          "headers": {"apns-priority": "5"}}})
        assert (await hub.send("template", {"text": 'Say "hi"', "n": "3"}, "owner:t"))[0] == 201
        [fcm] = double.received(android)
        assert fcm["payload"] == {"notification": {"body": 'Say "hi"'}, "data": {"n": "3"},
                                  "token": f"fcm-{android}"}
        [apns] = double.received(iphone)
        assert apns["payload"] == {"aps": {"alert": 'Say "hi"', "badge": 3}}
        assert apns["headers"] == {"apns-priority": "5"}
        assert (await hub.send("template", {"n": 3}, "owner:t"))[0] == 400  # text only
    run(scenario)


@pytest.mark.parametrize(("kind", "body", "tags", "said"), [
    ("gcm", FCM, None, "retired"),
    ("", FCM, None, "Format"),
    ("fcmv1", {"notification": {}}, None, "message"),
    ("fcmv1", {"message": {"data": {"n": 1}}}, None, "text only"),
    ("apple", [1], None, "object"),
    ("fcmv1", FCM, "owner:a &&", "ends too early"),
    ("fcmv1", FCM, "(a || b", "unclosed"),
    ("fcmv1", FCM, "owner abc", "valid tag expression"),
    ("fcmv1", FCM, " || ".join(f"t{n}" for n in range(21)), "20 tags"),
    ("fcmv1", FCM, " && ".join(f"t{n}" for n in range(7)), "6 tags"),
])
def test_a_send_that_breaks_the_rules_is_400(kind: str, body: Any, tags: str | None,
                                             said: str) -> None:
    async def scenario(hub: Hub, double: NotificationHubsDouble, _: Any) -> None:
        await hub.put(unique())
        status, text, _ = await hub.send(kind, body, tags)
        assert status == 400 and said in text, text
        assert not double.pushes
    run(scenario)


def test_twenty_ored_tags_or_six_mixed_are_taken() -> None:
    async def scenario(hub: Hub, double: NotificationHubsDouble, _: Any) -> None:
        device = unique()
        await hub.put(device, tags=["t19", "t1"])
        assert (await hub.send("fcmv1", FCM, " || ".join(f"t{n}" for n in range(20))))[0] == 201
        six = "t1 && (" + " || ".join(f"t{n}" for n in range(2, 7)) + ")"
        assert (await hub.send("fcmv1", FCM, six))[0] == 201
        assert len(double.received(device)) == 1
    run(scenario)


def test_a_notification_over_64_kb_is_413_and_a_wrong_content_type_400() -> None:
    async def scenario(hub: Hub, double: NotificationHubsDouble, _: Any) -> None:
        device = unique()
        await hub.put(device)
        filler = "x" * (64 * 1024 - len(json.dumps({"message": {"data": {"f": ""}}})))
        at_limit = {"message": {"data": {"f": filler}}}
        assert len(json.dumps(at_limit)) == 64 * 1024
        assert (await hub.send("fcmv1", at_limit))[0] == 201
        over = {"message": {"data": {"f": filler + "x"}}}
        status, text, _ = await hub.send("fcmv1", over)
        assert status == 413 and "<Code>413</Code>" in text
        status, _, _ = await hub.call("POST", f"/messages/?{API}", FCM, {
            "ServiceBusNotification-Format": "fcmv1", "Content-Type": "text/plain"})
        assert status == 400
        assert len(double.received(device)) == 1
    run(scenario)


def test_the_standard_tier_answers_with_the_notifications_location() -> None:
    async def scenario(hub: Hub, double: NotificationHubsDouble, _: Any) -> None:
        await hub.put(unique())
        status, _, headers = await hub.send("fcmv1", FCM)
        [push] = double.pushes
        assert status == 201
        assert headers["Location"].startswith(f"{hub.url}/messages/{push['notificationId']}")
    run(scenario, tier="Standard")


# --- faults and the controls -----------------------------------------------------------------


async def control(session: aiohttp.ClientSession, method: str, path: str, body: Any = None,
                  headers: dict[str, str] | None = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body)
    async with session.request(method, f"{PREFIX}_control/{path}", data=data,
                               headers=headers if headers is not None else JSON) as answer:
        text = await answer.text()
        return answer.status, json.loads(text) if text else None


def test_faults_answer_the_next_sends_then_sends_succeed() -> None:
    async def scenario(hub: Hub, double: NotificationHubsDouble,
                       session: aiohttp.ClientSession) -> None:
        device = unique()
        await hub.put(device)
        assert (await control(session, "POST", "faults",
                              {"status": 429, "count": 2, "retry_after": 7}))[0] == 201
        assert (await control(session, "POST", "faults", {"status": 503}))[0] == 201
        answers = [await hub.send("fcmv1", FCM) for _ in range(4)]
        assert [status for status, _, _ in answers] == [429, 429, 503, 201]
        assert answers[0][2]["Retry-After"] == "7" and "<Code>429</Code>" in answers[0][1]
        assert len(double.received(device)) == 1 and double.requests["send"] == 4
        # Installations are not faulted by a send's fault, unless told to be.
        await control(session, "POST", "faults", {"status": 500, "operation": "installation",
                                                  "count": None})
        assert await hub.put(device) == 500 and await hub.put(device) == 500
        assert (await hub.send("fcmv1", FCM))[0] == 201
        assert (await control(session, "DELETE", "faults"))[0] == 204
        assert await hub.put(device) == 200
    run(scenario)


@pytest.mark.parametrize("body", [{"status": 404}, {"status": 429, "count": 0},
                                  {"status": 500, "operation": "all"}, [], {"status": True}])
def test_a_bad_fault_is_a_problem(body: Any) -> None:
    async def scenario(hub: Hub, double: NotificationHubsDouble,
                       session: aiohttp.ClientSession) -> None:
        status, problem = await control(session, "POST", "faults", body)
        assert status == 400 and problem["status"] == 400
        assert not double.faults.pending
    run(scenario)


def test_the_controls_refuse_other_sites_and_non_json() -> None:
    async def scenario(hub: Hub, double: NotificationHubsDouble,
                       session: aiohttp.ClientSession) -> None:
        fault = {"status": 500}
        other = {**JSON, "Origin": "http://localhost:3000"}
        assert (await control(session, "POST", "faults", fault, other))[0] == 403
        cross = {**JSON, "Sec-Fetch-Site": "same-site"}
        assert (await control(session, "POST", "faults", fault, cross))[0] == 403
        assert (await control(session, "POST", "reset", None, {}))[0] == 415
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        assert (await control(session, "POST", "faults", fault, form))[0] == 415
        assert not double.faults.pending
        async with session.get(f"{PREFIX}_control/state") as answer:
            assert answer.headers["Cross-Origin-Resource-Policy"] == "same-origin"
    run(scenario)


def test_a_test_in_another_process_waits_for_a_devices_pushes() -> None:
    async def scenario(hub: Hub, double: NotificationHubsDouble,
                       session: aiohttp.ClientSession) -> None:
        device = unique()
        await hub.put(device)
        waiting = asyncio.ensure_future(control(
            session, "GET", f"pushes?installation_id={device}&at_least=1&wait=20", None, {}))
        await asyncio.wait_for(double.waited.wait(), 10)  # the control waits on the double
        assert not waiting.done()  # it waits for the push, not answering what it has
        await hub.send("fcmv1", FCM)
        status, body = await waiting
        assert status == 200 and [p["installationId"] for p in body["pushes"]] == [device]
        status, body = await control(session, "GET", "pushes?installation_id=nobody", None, {})
        assert (status, body["pushes"]) == (200, [])
    run(scenario)


def test_the_feed_sends_the_devices_then_each_change() -> None:
    async def scenario(hub: Hub, double: NotificationHubsDouble,
                       session: aiohttp.ClientSession) -> None:
        first, second = unique(), unique()
        await hub.put(first, tags=["owner:f"])
        async with session.get(f"{PREFIX}_control/events") as stream:
            events = read_events(stream)
            kind, history = await anext(events)
            assert kind == "history"
            assert [d["installationId"] for d in history["devices"]] == [first]
            await hub.put(second)
            await hub.send("fcmv1", FCM, "owner:f")
            await hub.call("DELETE", f"/installations/{second}?{API}")
            seen = [await anext(events) for _ in range(3)]
        assert [kind for kind, _ in seen] == ["device", "push", "device-removed"]
        assert seen[0][1]["installationId"] == second
        assert seen[1][1]["installationId"] == first
        assert seen[1][1]["payload"]["token"] == f"fcm-{first}"
    run(scenario)


def test_reset_forgets_devices_and_pushes_and_mount_comes_before_start() -> None:
    async def scenario(hub: Hub, double: NotificationHubsDouble,
                       session: aiohttp.ClientSession) -> None:
        await hub.put(unique())
        await hub.send("fcmv1", FCM)
        assert (await control(session, "POST", "reset"))[0] == 204
        status, state = await control(session, "GET", "state", None, {})
        assert (status, state["devices"], state["pushes"]) == (200, [], [])
    run(scenario)

    async def late() -> None:
        async with TwilioSandbox(accounts={ACCOUNT_SID: AUTH_TOKEN}) as sandbox:
            with pytest.raises(RuntimeError, match="before"):
                sandbox.mount(PREFIX, build_app(NotificationHubsDouble()))
    asyncio.run(late())


# --- what `make run` gives the app ------------------------------------------------------------


def parse_connection(text: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in text.split(";") if part)


@pytest.fixture
def environment() -> Iterator[None]:
    """The launcher sets the app's settings in os.environ: put it back after."""
    kept = dict(os.environ)
    for name in ("NOTIFICATION_HUBS_CONNECTION", "NOTIFICATION_HUBS_HUB"):
        os.environ.pop(name, None)
    yield
    os.environ.clear()
    os.environ.update(kept)


@pytest.mark.usefixtures("environment")
def test_make_run_points_the_app_at_the_double_with_a_key_of_its_own() -> None:

    async def scenario() -> None:
        run = await launcher.start_sandbox({})
        try:
            assert run.push is not None
            connection = parse_connection(os.environ["NOTIFICATION_HUBS_CONNECTION"])
            assert connection["Endpoint"] == f"{run.sandbox.base_url}/notificationhubs/"
            assert connection["SharedAccessKeyName"] == FULL_RULE
            hub_name = os.environ["NOTIFICATION_HUBS_HUB"]
            assert hub_name == DEFAULT_HUB
            # The app's settings work as they are: sign with them, register, send.
            url = f"{connection['Endpoint']}{hub_name}"
            auth = {"Authorization": sas(url, FULL_RULE, connection["SharedAccessKey"])}
            device = unique()
            body = {"installationId": device, "platform": "fcmv1", "pushChannel": "t"}
            async with aiohttp.ClientSession() as session:
                async with session.put(f"{url}/installations/{device}?{API}", json=body,
                                       headers=auth) as answer:
                    assert answer.status == 200
                async with session.post(f"{url}/messages/?{API}", json=FCM, headers={
                        **auth, "ServiceBusNotification-Format": "fcmv1"}) as answer:
                    assert answer.status == 201
            assert len(run.push.received(device)) == 1
        finally:
            await run.sandbox.stop()
        os.environ.pop("NOTIFICATION_HUBS_CONNECTION")
        second = await launcher.start_sandbox({})
        await second.sandbox.stop()
        assert second.settings["NOTIFICATION_HUBS_CONNECTION"] != run.settings[
            "NOTIFICATION_HUBS_CONNECTION"]  # a key per run
    asyncio.run(scenario())


@pytest.mark.usefixtures("environment")
def test_make_run_leaves_a_configured_hub_alone() -> None:
    own = "Endpoint=sb://mine.servicebus.windows.net/;SharedAccessKeyName=R;SharedAccessKey=k"
    os.environ.update(NOTIFICATION_HUBS_CONNECTION=own, NOTIFICATION_HUBS_HUB="my-hub")

    async def scenario() -> None:
        run = await launcher.start_sandbox({})
        await run.sandbox.stop()
        assert "NOTIFICATION_HUBS_CONNECTION" not in run.settings
        assert os.environ["NOTIFICATION_HUBS_CONNECTION"] == own
    asyncio.run(scenario())


def test_a_rule_name_may_come_url_encoded() -> None:
    async def scenario(hub: Hub, double: NotificationHubsDouble, _: Any) -> None:
        hub.rule = "send rule"
        token = hub.auth()["Authorization"]
        encoded = token.replace("skn=send rule", "skn=send%20rule")
        status, _, _ = await hub.call("POST", f"/messages/?{API}", FCM, {
            "ServiceBusNotification-Format": "fcmv1", "Authorization": encoded})
        assert status == 201
    run(scenario, rules={"send rule": Rule("k" * 44, frozenset({"Send"}))})


# --- hostile input: refusals, never a 500 ------------------------------------------------------


def test_a_signature_with_non_ascii_characters_is_401() -> None:
    async def scenario(hub: Hub, double: NotificationHubsDouble, _: Any) -> None:
        token = hub.auth()["Authorization"]
        signature = token.split("sig=", 1)[1].split("&", 1)[0]
        for forged in ("%C3%A9", "%C3%A9" * 30, "%FF%FE", "\u00e9"):
            status, text, _ = await hub.call("GET", f"/installations/{unique()}?{API}",
                                             headers={"Authorization": token.replace(
                                                 signature, forged)})
            assert status == 401 and "InvalidSignature" in text, (forged, text)
    run(scenario)


@pytest.mark.parametrize("expression", [
    "(" * 1500 + "a" + ")" * 1500, "!" * 3000 + "a", "!(" * 700 + "a" + ")" * 700,
    "(" * 33 + "a" + ")" * 33])
def test_a_tag_expression_nested_too_deep_is_400(expression: str) -> None:
    async def scenario(hub: Hub, double: NotificationHubsDouble, _: Any) -> None:
        await hub.put(unique(), tags=["a"])
        status, text, _ = await hub.send("fcmv1", FCM, expression)
        assert status == 400 and "<Code>400</Code>" in text, text[:200]
        assert not double.pushes
    run(scenario)


def test_a_tag_expression_nested_32_deep_is_read() -> None:
    async def scenario(hub: Hub, double: NotificationHubsDouble, _: Any) -> None:
        device = unique()
        await hub.put(device, tags=["a"])
        assert (await hub.send("fcmv1", FCM, "(" * 32 + "a" + ")" * 32))[0] == 201
        assert (await hub.send("fcmv1", FCM, "!" * 32 + "a"))[0] == 201  # even: a
        assert len(double.received(device)) == 2
    run(scenario)


def test_a_hundred_faults_are_kept_and_the_next_is_refused() -> None:
    async def scenario(hub: Hub, double: NotificationHubsDouble,
                       session: aiohttp.ClientSession) -> None:
        for _ in range(100):
            assert (await control(session, "POST", "faults", {"status": 500}))[0] == 201
        status, problem = await control(session, "POST", "faults", {"status": 503})
        assert (status, problem["status"]) == (400, 400) and "100" in problem["detail"]
        assert len(double.faults.pending) == 100
    run(scenario)


# --- the tier's limits and templates, as documented ---------------------------------------------


def test_a_free_namespace_holds_500_devices() -> None:
    async def scenario(hub: Hub, double: NotificationHubsDouble, _: Any) -> None:
        kept = [unique() for _ in range(500)]
        for device in kept:  # straight in: 500 requests would only cost time
            double.put(DEFAULT_HUB, {"installationId": device, "platform": "fcmv1",
                                     "pushChannel": "t", "tags": []})
        status = await hub.put(unique())
        assert status == 403
        assert await hub.put(kept[0], tags=["still:mine"]) == 200  # an update is no new device
        assert double.devices() == 500
    run(scenario)


def test_template_property_names_match_whatever_their_case() -> None:
    async def scenario(hub: Hub, double: NotificationHubsDouble, _: Any) -> None:
        device = unique()
        await hub.put(device, templates={"main": {
            "body": '{"message": {"data": {"a": "$(Text)", "b": "$(TEXT)"}}}'}})
        assert (await hub.send("template", {"text": "hello"}))[0] == 201
        [push] = double.received(device)
        assert push["payload"]["data"] == {"a": "hello", "b": "hello"}
    run(scenario)
