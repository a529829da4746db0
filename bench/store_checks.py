"""What the store's checks cost a send: an Idempotency-Key and every rate limit on.

A host on the benchmark's Azurite serves send_sms with a fresh
``Idempotency-Key`` on every request and every limit counted (quotas high
enough never to trip: the cost of counting is the figure). Two figures:
200 concurrent sends at Twilio 100 ms against 200 direct async calls (the
same target as without the store), and the p50 latency of a guarded send
beside a plain one (the store-on host without limits, which records the
SID alike), interleaved request by request: the difference is what the key
and the counters cost.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable

from bench import load, verdicts
from bench.direct import DirectTwilio
from bench.figures import CONCURRENCY_LATENCY, CONCURRENT, TEXT, TO, paired_bursts
from bench.in_process import InProcessApp
from bench.load import Call
from bench.stack import Host, Sandbox
from bench.verdicts import Row

LATENCY_WARMUP = 20
LATENCY_ROUNDS = 200
#: Counted, never tripped: every request of the benchmark comes from one address.
LIMITS = {name: "1000000" for name in (
    "RATE_LIMIT_SMS_PER_CALLER", "RATE_LIMIT_CALLS_PER_CALLER", "RATE_LIMIT_PER_DESTINATION",
    "RATE_LIMIT_PER_COUNTRY", "RATE_LIMIT_PER_ACCOUNT")}


def guarded_environment(env: dict[str, str]) -> dict[str, str]:
    """A store-on host's settings with every limit counted (and the keys sent by the calls)."""
    return {**env, **LIMITS}


def guarded_send(base_url: str) -> Call:
    """send_sms as a careful mobile app sends it: a new Idempotency-Key every time."""
    body = json.dumps({"to": TO, "body": TEXT}).encode()
    return Call("POST", f"{base_url}/api/send_sms",
                {"Content-Type": "application/json", "Idempotency-Key": str(uuid.uuid4())},
                body, 201)


def plain_send(base_url: str) -> Call:
    body = json.dumps({"to": TO, "body": TEXT}).encode()
    return Call("POST", f"{base_url}/api/send_sms", {"Content-Type": "application/json"},
                body, 201)


async def figures(guarded: Host, plain: Host, sandbox: Sandbox, direct: DirectTwilio,
                  in_process: InProcessApp, cpu: list[float] | None = None) -> list[Row]:
    """``in_process``: send_sms with the guarded host's settings, sending keys likewise;
    ``cpu`` gets the guarded host's CPU seconds per send of each burst."""
    return [await added_latency(guarded, plain),
            *await concurrency(guarded, sandbox, direct, in_process, cpu)]


async def added_latency(guarded: Host, plain: Host) -> Row:
    """Sequential guarded and plain sends, alternating, on two hosts of the same app."""
    async with load.session(1) as guarded_client, load.session(1) as plain_client:
        samples: dict[str, list[float]] = {"guarded": [], "plain": []}
        sends: dict[str, Callable[[], Awaitable[float]]] = {
            "guarded": lambda: load.timed(guarded_client, guarded_send(guarded.url)),
            "plain": lambda: load.timed(plain_client, plain_send(plain.url)),
        }
        for round_ in range(LATENCY_WARMUP + LATENCY_ROUNDS):
            for name in (("guarded", "plain") if round_ % 2 else ("plain", "guarded")):
                taken = await sends[name]()
                if round_ >= LATENCY_WARMUP:
                    samples[name].append(taken)
    return verdicts.store_latency_row(samples["guarded"], samples["plain"])


async def concurrency(guarded: Host, sandbox: Sandbox, direct: DirectTwilio,
                      in_process: InProcessApp, cpu: list[float] | None = None) -> list[Row]:
    figure = (f"concurrency: {CONCURRENT} concurrent, Twilio {CONCURRENCY_LATENCY * 1000:.0f} ms,"
              " Idempotency-Key and all limits on (Azurite)")
    ours, base, _ = await paired_bursts(lambda: guarded_send(guarded.url), sandbox, direct,
                                        host=guarded, cpu=cpu)
    served, same_work, _ = await paired_bursts(lambda: guarded_send(guarded.url), sandbox,
                                               in_process)
    return [verdicts.judged(verdicts.concurrency_row(f"{figure}: send_sms", ours, base),
                            verdicts.CONCURRENCY_GUARDED, verdicts.STORE_WORK),
            verdicts.stored_concurrency_row(f"{figure}: send_sms", served, same_work)]
