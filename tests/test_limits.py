"""Rate limits on real Table Storage (Azurite): counting, sharing, windows, failures.

In process, ``admit`` runs against the session's Azurite with an injected
clock (windows roll over without sleeping); several ``Store`` clients on one
Azurite are several instances of the app. End to end, two host processes
share one Azurite and the sandbox counts what was really sent.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
import secrets
from datetime import UTC, datetime, timedelta

import pytest
import unique
from harness import ACCOUNT_SID, APP_URL, AUTH_TOKEN, invoke, problem, request
from live import LiveApp
from storage import run, shared_azurite, start_azurite
from test_delivery_e2e import http

from devhost.easy_auth import bearer
from shared import limits
from shared import store as store_module
from shared.limits import Limit, admit, client_ip, limits_for
from shared.problems import Problem
from shared.settings import load_settings

BASE = {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN}
NOON = datetime(2026, 3, 14, 12, 0, 5, tzinfo=UTC)
RATE_LIMITED = "urn:twilio-functions:problem:rate-limited"


LIMITS_OFF = dict.fromkeys(("RATE_LIMIT_SMS_PER_CALLER", "RATE_LIMIT_CALLS_PER_CALLER",
                            "RATE_LIMIT_PER_DESTINATION", "RATE_LIMIT_PER_COUNTRY",
                            "RATE_LIMIT_PER_ACCOUNT"), "0")


def settings_with(**limits_: int | str):
    env = {**BASE, "STATE_STORAGE": shared_azurite().connection_string, **LIMITS_OFF}
    env.update({f"RATE_LIMIT_{name.upper()}": str(value) for name, value in limits_.items()})
    return load_settings(env)


async def outcome(settings, kind="sms", who=None, to=None, now=NOON) -> int | Problem:
    try:
        await admit(settings, kind, who or f"ip:{secrets.token_hex(4)}", to, now=now)
    except Problem as problem:
        return problem
    return 201


# --- in process ----------------------------------------------------------------------


def test_the_n_plus_first_is_refused_with_the_rate_limit_fields(caplog):
    settings = settings_with(sms_per_caller=3)
    who = f"user:aad:{secrets.token_hex(4)}"

    async def scenario():
        return [await outcome(settings, who=who) for _ in range(4)]

    with caplog.at_level(logging.WARNING, "twilio_functions.limits"):
        *admitted, refused = run(scenario())
    assert admitted == [201, 201, 201]
    assert refused.status == 429 and refused.type == RATE_LIMITED
    assert refused.extensions["limit"] == "sms-per-caller"
    retry_after = 3600 - 5
    assert refused.headers == {
        "Retry-After": str(retry_after),
        "RateLimit-Policy": '"sms-per-caller";q=3;w=3600',
        "RateLimit": f'"sms-per-caller";r=0;t={retry_after}'}
    assert who not in refused.detail
    tripped = [r.getMessage() for r in caplog.records if "rate_limit=tripped" in r.getMessage()]
    assert len(tripped) == 1 and "limit=sms-per-caller" in tripped[0]
    assert who not in tripped[0]


def test_each_caller_and_each_kind_counts_apart():
    settings = settings_with(sms_per_caller=2, calls_per_caller=1)
    alice, bob = (f"user:aad:{name}-{secrets.token_hex(4)}" for name in ("alice", "bob"))

    async def scenario():
        return ([await outcome(settings, who=alice) for _ in range(3)],
                [await outcome(settings, "call", who=alice) for _ in range(2)],
                [await outcome(settings, who=bob) for _ in range(2)])

    alice_sms, alice_calls, bob_sms = run(scenario())
    assert alice_sms[:2] == [201, 201] and alice_sms[2].status == 429
    assert alice_calls[0] == 201 and alice_calls[1].extensions["limit"] == "call-per-caller"
    assert bob_sms == [201, 201]


def test_a_refused_request_counts_for_nothing_on_the_other_limits():
    """The destination limit refuses: the caller's and the account's counts are given back."""
    settings = settings_with(sms_per_caller=5, per_destination=1, per_account=100)
    who, to = f"ip:{secrets.token_hex(4)}", unique.number()

    async def scenario():
        first = await outcome(settings, who=who, to=to)
        refused = [await outcome(settings, who=who, to=to) for _ in range(6)]
        # Had the refusals counted, the caller's 5 would be spent.
        later = [await outcome(settings, who=who, to=unique.number()) for _ in range(5)]
        return first, refused, later

    first, refused, later = run(scenario())
    assert first == 201
    assert {p.extensions["limit"] for p in refused} == {"per-destination"}
    assert later[:4] == [201] * 4
    assert later[4].extensions["limit"] == "sms-per-caller"


def test_the_country_limit_holds_all_callers_together_and_no_other_country():
    """Six callers, six numbers, one country: the fifth and sixth are refused; a number
    in another country is not. In a day no other test's clock is in, so the country's
    count starts at nothing whatever ran before."""
    settings = settings_with(per_country=4)
    hour = unique.day() + timedelta(hours=12)
    canada = "+16135550123"

    async def scenario():
        us = [await outcome(settings, to=unique.number(), now=hour) for _ in range(6)]
        return us, await outcome(settings, to=canada, now=hour)

    us, other_country = run(scenario())
    assert us[:4] == [201] * 4
    assert [a.extensions["limit"] for a in us[4:]] == ["per-country"] * 2
    assert other_country == 201


def test_the_account_limit_holds_all_callers_together_and_no_other_account():
    """Six callers to six numbers in six countries on one account (its own, in a day of
    its own): the fifth and sixth are refused; another account is not."""
    account, other = (f"AC{secrets.token_hex(16)}" for _ in range(2))
    settings = dataclasses.replace(settings_with(per_account=4), account_sid=account)
    day = unique.day()
    numbers = [unique.number(), "+16135550123", "+447911123456", "+33612345678",
               "+61412345678", "+5511987654321"]

    async def scenario():
        mine = [await outcome(settings, to=number, now=day) for number in numbers]
        return mine, await outcome(dataclasses.replace(settings, account_sid=other),
                             to=numbers[0], now=day)

    mine, other_account = run(scenario())
    assert mine[:4] == [201] * 4
    assert [a.extensions["limit"] for a in mine[4:]] == ["per-account"] * 2
    assert other_account == 201


def test_counters_roll_over_with_the_window():
    settings = settings_with(sms_per_caller=2, per_destination=3)
    who, to = f"user:aad:{secrets.token_hex(4)}", unique.number()
    before_hour = NOON.replace(minute=59, second=59)

    async def scenario():
        hour = [await outcome(settings, who=who, to=to, now=before_hour) for _ in range(3)]
        next_hour = [await outcome(settings, who=who, to=to, now=before_hour
                                   + timedelta(seconds=1)) for _ in range(2)]
        next_day = await outcome(settings, who=who, to=to, now=NOON + timedelta(days=1))
        return hour, next_hour, next_day

    hour, next_hour, next_day = run(scenario())
    assert hour[:2] == [201, 201] and hour[2].extensions["limit"] == "sms-per-caller"
    assert hour[2].headers["Retry-After"] == "1"
    # A new hour: the caller may send again, but the day's third to this number is the last.
    assert next_hour[0] == 201 and next_hour[1].extensions["limit"] == "per-destination"
    assert next_day == 201


def test_many_instances_racing_admit_exactly_the_limit():
    """16 store clients (instances) race 60 requests on a sharded counter of 40."""
    settings = settings_with(per_account=40)
    instances = [store_module.connect(settings.state_connection) for _ in range(16)]
    account = f"AC{secrets.token_hex(16)}"
    limit = Limit("per-account", account, 40, limits.DAY)
    assert len(limit.shares()) == 5 and sum(limit.shares()) == 40

    async def scenario():
        try:
            taken = await asyncio.gather(*(limits._take(instances[n % 16], limit, NOON)
                                           for n in range(60)))
        finally:
            for store in instances:
                await store.close()
        return taken

    taken = asyncio.run(scenario())
    assert sum(shard is not None for shard in taken) == 40


@pytest.mark.parametrize("failure, expected", [("refuse", 503), ("allow", 201)])
def test_a_store_failure_follows_the_setting_never_a_500(failure, expected, caplog):
    azurite = start_azurite()
    env = {**BASE, "STATE_STORAGE": azurite.connection_string, "RATE_LIMIT_SMS_PER_CALLER": "5",
           "RATE_LIMIT_STORE_FAILURE": failure}
    settings = load_settings(env)
    azurite.stop()
    with caplog.at_level(logging.ERROR, "twilio_functions.limits"):
        answer = run(outcome(settings, to=unique.number()))
    if expected == 503:
        assert answer.status == 503 and answer.type.endswith(":store-unavailable")
        assert answer.headers["Retry-After"].isdigit()
    else:
        assert answer == 201
    assert "rate_limit=unchecked kind=sms" in caplog.text


@pytest.mark.parametrize("forwarded, expected", [
    ("203.0.113.7", "203.0.113.7"),
    ("203.0.113.7:50312", "203.0.113.7"),
    ("10.0.0.1, 198.51.100.4:443", "198.51.100.4"),  # a client's own entry is on the left
    ("[2001:db8:1:2:3:4:5:6]:443", "2001:db8:1:2::/64"),
    ("2001:db8:1:2::9", "2001:db8:1:2::/64"),
    ("", "unknown"),
    ("not-an-address", "unknown"),
])
def test_the_client_address_is_the_front_ends_last_entry(forwarded, expected):
    assert client_ip({"X-Forwarded-For": forwarded} if forwarded else {}) == expected


def test_zero_means_no_limit_and_no_destination_means_caller_only():
    settings = settings_with(sms_per_caller=3, per_destination=0, per_account=5)
    assert [limit.name for limit in limits_for(settings, "sms", "ip:x", "+14155552671")] == [
        "sms-per-caller", "per-account"]
    assert [limit.name for limit in limits_for(settings, "sms", "ip:x", None)] == [
        "sms-per-caller"]


# --- through send_sms: anonymous callers told apart by the front end's address -------------


def anonymous_sms(forwarded_for: str):
    """send_sms without a signed-in user, as Azure's front end forwards it."""
    return invoke("send_sms", request("POST", f"{APP_URL}/send_sms",
                                      json_body={"to": unique.number(), "body": "anonymous"},
                                      headers={"X-Forwarded-For": forwarded_for}))


def test_anonymous_callers_count_by_the_last_forwarded_address(app_env, monkeypatch):
    """Two per caller: the front end's entry (the last) tells callers apart; entries a
    client adds on the left change nothing, neither to escape its count nor to spend
    another's."""
    for name, value in {**LIMITS_OFF, "RATE_LIMIT_SMS_PER_CALLER": "2",
                        "STATE_STORAGE": shared_azurite().connection_string}.items():
        monkeypatch.setenv(name, value)
    alice, bob = unique.address(), unique.address()

    assert [anonymous_sms(alice).status_code for _ in range(2)] == [201, 201]
    for spoofed in (f"10.0.0.1, {alice}", f"{bob}, {alice}", f"{unique.address()}, {alice}"):
        refused = anonymous_sms(spoofed)
        assert refused.status_code == 429, spoofed
        assert problem(refused)["limit"] == "sms-per-caller"
    # Bob's own address is his own count, even behind a left-hand entry naming Alice's.
    assert [anonymous_sms(bob).status_code, anonymous_sms(f"{alice}, {bob}").status_code,
            anonymous_sms(bob).status_code] == [201, 201, 429]
    assert len(app_env.messages) == 4


# --- end to end: two host processes, one Azurite -----------------------------------------

LIMITED = {**BASE, "RATE_LIMIT_SMS_PER_CALLER": "4", "RATE_LIMIT_CALLS_PER_CALLER": "4"}


def sms(app: LiveApp, to: str, headers: dict[str, str] | None = None):
    return http("POST", f"{app.base_url}/api/send_sms", {"to": to, "body": "limit test"},
                headers)


def test_limits_hold_across_two_hosts_and_other_users_continue():
    mallory = {"Authorization": bearer(f"mallory{secrets.token_hex(3)}")}
    alice = {"Authorization": bearer(f"alice{secrets.token_hex(3)}")}
    first = LiveApp(LIMITED, args=("--sandbox", "--auth"))
    second = LiveApp({**LIMITED, "TWILIO_API_BASE_URL": first.sandbox_url,
                      "TWILIO_FROM_NUMBER": "+15005550006"},
                     args=("--auth",))
    try:
        jobs = [(first if n % 2 else second, unique.number()) for n in range(12)]
        with concurrent.futures.ThreadPoolExecutor(max_workers=12) as pool:
            answers = list(pool.map(lambda job: sms(job[0], job[1], mallory), jobs))
        codes = sorted(code for code, _, _ in answers)
        assert codes == [201] * 4 + [429] * 8
        refused = next(headers for code, _, headers in answers if code == 429)
        assert refused["RateLimit-Policy"] == '"sms-per-caller";q=4;w=3600'
        assert int(refused["Retry-After"]) > 0
        sent = {answer["sid"] for code, answer, _ in answers if code == 201}
        state = first.state()
        assert {m["sid"] for m in state["messages"]} >= sent
        assert len([m for m in state["messages"] if m["body"] == "limit test"]) == 4

        assert sms(second, unique.number(), alice)[0] == 201  # another user is unaffected
        logs = first.log() + second.log()
        assert logs.count("rate_limit=tripped limit=sms-per-caller") == 8
        assert "status=500" not in logs
    finally:
        assert first.stop() == 0
        assert second.stop() == 0


def test_an_instance_that_remembers_a_counter_still_sees_another_instances_writes():
    """One instance's requests take turns and start from the row it last wrote; a write by
    another instance since is found by the ETag, never overwritten."""
    settings = settings_with(per_account=6)
    first, second = (store_module.connect(settings.state_connection) for _ in range(2))
    limit = Limit("per-account", f"AC{secrets.token_hex(16)}", 6, limits.DAY)

    async def scenario():
        try:
            together = await asyncio.gather(*(limits._take(first, limit, NOON)
                                              for _ in range(4)))
            by_second = [await limits._take(second, limit, NOON) for _ in range(3)]
            after = await limits._take(first, limit, NOON)  # remembers 4: must learn of 6
            return together, by_second, after
        finally:
            await first.close()
            await second.close()

    together, by_second, after = asyncio.run(scenario())
    # One shard (a quota of 6): the first instance took 4 of it, the second the last 2.
    assert together == [0, 0, 0, 0]
    assert by_second == [0, 0, None]
    assert after is None
