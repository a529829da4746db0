"""Whether Twilio waits longer for ``twiml`` with push on: the inbound-SMS webhook's p50,
push on against push off.

With push on, an SMS in a user's thread also puts one message on the ``push-events``
queue before ``twiml`` answers (``shared.push.enqueue``): one more round trip to the
storage account, beside the five table round trips the webhook already makes (the
``received`` insert, the contact's partition query, the item, its thread's summary read
and the transaction moving it). Sending
the push itself is ``push_notify``'s, which the hosts measured here do not serve: on
Flex Consumption a queue-triggered function scales on instances of its own, so the
webhook's instance only enqueues; the hub in the settings is never reached.

Two hosts as ``make run`` serves the app, on the benchmark's Azurite, alike but for the
hub and the queue (``AzureWebJobsStorage``: the queue and tables of one account). Every
inbound SMS is new (its own ``MessageSid``) and lands in a thread with an owner
(``SMS_UNASSIGNED_OWNER``), so every one on the push-on host enqueues; the two hosts'
requests alternate in a shuffled order each round, so a noisy moment hits both alike.
"""

from __future__ import annotations

import contextlib
import random
import secrets
import time
from pathlib import Path
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

from bench import load, verdicts
from bench.load import Call
from bench.stack import VALID_FROM, Account, BenchError, Host
from bench.verdicts import Limit, Row
from shared import push
from shared.settings import load_settings

ROUNDS = 300
WARMUP = 30
#: One queue write beside the webhook's five table round trips is about 1.2x by design;
#: 1.3x leaves room for noise, and a webhook that waited on the hub (tens of ms) or
#: retried the queue would be far over it.
TARGET = Limit(1.3)
FORM = "application/x-www-form-urlencoded"


def push_environment(env: dict[str, str]) -> dict[str, str]:
    """``env`` with push on: a hub (never reached here) and the queue on the same Azurite."""
    key = secrets.token_urlsafe(32)
    return {**env, "AzureWebJobsStorage": env["STATE_STORAGE"],
            "NOTIFICATION_HUBS_CONNECTION": "Endpoint=http://127.0.0.1:9/notificationhubs/;"
            f"SharedAccessKeyName=DefaultFullSharedAccessSignature;SharedAccessKey={key}",
            "NOTIFICATION_HUBS_HUB": "bench-hub"}


def inbound_sms(base_url: str, account: Account, remote: str) -> Call:
    """A new SMS from ``remote`` to the app's number, signed as Twilio signs it."""
    sid = "SM" + secrets.token_hex(16)
    url = f"{base_url}/api/twiml"
    params = {"MessageSid": sid, "SmsSid": sid, "AccountSid": account.sid, "From": remote,
              "To": VALID_FROM, "Body": "See you at 8", "NumMedia": "0",
              "ApiVersion": "2010-04-01"}
    signature = RequestValidator(account.token).compute_signature(url, params)
    return Call("POST", url, {"X-Twilio-Signature": signature, "Content-Type": FORM},
                urlencode(params).encode())


async def figures(app_dir: Path, env: dict[str, str], account: Account,
                  work: Path) -> list[Row]:
    """The inbound-SMS webhook's p50 on a host with push on and one with it off."""
    if "QueueEndpoint=" not in env.get("STATE_STORAGE", ""):
        raise BenchError("the benchmark's Azurite serves no Queue service: push cannot be on")
    # Every SMS has an owner (who reads what nobody claims), so each one pushes.
    base = {**env, "SMS_UNASSIGNED_OWNER": "anonymous"}
    pushing = push_environment(base)
    async with contextlib.AsyncExitStack() as stack:
        hosts = {}
        for name, host_env in (("off", base), ("on", pushing)):
            hosts[name] = await Host.start(app_dir, host_env, work / f"host-push-{name}.log")
            stack.push_async_callback(hosts[name].stop)
        samples = await _interleaved(hosts, account)
    queued = await _queued(pushing)
    if queued < WARMUP + ROUNDS:  # else push was not on, and the figure says nothing
        raise BenchError(f"the push-on host queued {queued} events for "
                         f"{WARMUP + ROUNDS} inbound SMS")
    return [push_row(samples["on"], samples["off"])]


async def _queued(env: dict[str, str]) -> int:
    """How many events wait on the queue (nothing takes them off here)."""
    connection = load_settings(env).queue_connection
    assert connection is not None
    async with push.queue_client(connection) as queue:
        properties = await queue.get_queue_properties()
    return properties.approximate_message_count


async def _interleaved(hosts: dict[str, Host], account: Account) -> dict[str, list[float]]:
    remotes = {name: f"+1415{secrets.randbelow(10**7):07d}" for name in hosts}
    samples: dict[str, list[float]] = {name: [] for name in hosts}
    order = list(hosts)
    async with load.session(1) as client:
        for round_ in range(WARMUP + ROUNDS):
            random.shuffle(order)
            for name in order:
                call = inbound_sms(hosts[name].url, account, remotes[name])
                started = time.perf_counter()
                await load.send(client, call)
                if round_ >= WARMUP:
                    samples[name].append(time.perf_counter() - started)
    return samples


def push_row(on: list[float], off: list[float]) -> Row:
    """p50 with push on against off, judged on ``TARGET``."""
    ours, base = verdicts.percentile(on, 50), verdicts.percentile(off, 50)
    ratio = verdicts.ratio_or_nan(ours, base)
    return Row("twiml p50, inbound SMS: push on vs off (the event queued)", verdicts.ms(ours),
               f"{verdicts.ms(base)} push off", ratio, str(TARGET), TARGET.holds(ratio), None,
               "one more storage round trip (the queue message) beside the webhook's five table "
               "ones; push_notify runs elsewhere (its own instances on Flex Consumption)")
