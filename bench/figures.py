"""Each figure of the benchmark: how it is measured, its baseline and its target.

Every figure is a ratio within one run, ours against a baseline measured the
same way moments apart (interleaved where the measurement is short), because
the machines are shared and noisy: absolute numbers move from run to run,
ratios much less. What the numbers say (ratios, targets, verdicts) is in
``verdicts.py``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import random
import re
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Protocol
from urllib.parse import urlencode

import aiohttp
from twilio.request_validator import RequestValidator

from bench import load, verdicts
from bench.direct import DirectTwilio
from bench.in_process import InProcessApp
from bench.load import Call
from bench.stack import VALID_FROM, Account, BenchError, Host, Sandbox
from bench.verdicts import ImportProfile, Row
from devhost import children
from shared.identity import ANONYMOUS
from shared.threads import owner_key

__all__ = ["ImportProfile", "Row"]  # where the runner and the profiler take them from

TO = "+14155552671"
TEXT = "Hello from the benchmark"
JSON = {"Content-Type": "application/json"}

LATENCY_ROUNDS = 400
LATENCY_WARMUP = 30
SEQUENTIAL_SENDS = 100
CONCURRENT = 200
CONCURRENCY_LATENCY = 0.1
CONCURRENCY_RUNS = 3
THROUGHPUT_ROUNDS = 8
THROUGHPUT_BLOCK = 1000
THROUGHPUT_CONCURRENCY = 16
CALLBACK_SIDS = 1000  # about 8 reports each: a call gets up to 4, its legs more
MEMORY_EARLY = 100
MEMORY_TOTAL = 10_000
MEMORY_CONCURRENCY = 8
COLD_RUNS = 7
IMPORT_RUNS = 5


class Calls:
    """The requests the figures send to a host, as a mobile app and Twilio would."""

    def __init__(self, base_url: str, account: Account) -> None:
        self.base_url = base_url
        twiml = f"{base_url}/api/twiml?{urlencode({'message': TEXT})}"
        self.twiml_url = twiml  # also what make_call's TwiML URL is, as the app builds it
        self._twiml_signature = RequestValidator(account.token).compute_signature(twiml, {})
        self._account = account

    def send_sms(self) -> Call:
        body = json.dumps({"to": TO, "body": TEXT}).encode()
        return Call("POST", f"{self.base_url}/api/send_sms", JSON, body, 201)

    def naive_send_sms(self) -> Call:
        body = json.dumps({"to": TO, "body": TEXT}).encode()
        return Call("POST", f"{self.base_url}/api/naive_send_sms", JSON, body, 201)

    def make_call(self) -> Call:
        body = json.dumps({"to": TO, "message": TEXT}).encode()
        return Call("POST", f"{self.base_url}/api/make_call", JSON, body, 201)

    def twiml(self) -> Call:
        """Signed as Twilio signs it: the host checks signatures in every figure."""
        return Call("GET", self.twiml_url, {"X-Twilio-Signature": self._twiml_signature})

    def status_callbacks(self, sids: list[str], numbers: Iterator[int]) -> Iterator[Call]:
        """Twilio's reports for calls the app placed, each new (a higher SequenceNumber), to
        the StatusCallback URL the app gave Twilio (it names the owner's partition), so
        each is one ETag-checked write of its row where this instance remembers the row (a
        read first where it does not); signed as Twilio signs."""
        url = f"{self.base_url}/api/status_callback?owner={owner_key(ANONYMOUS.owner)}"
        validator = RequestValidator(self._account.token)
        for number in numbers:
            params = {"AccountSid": self._account.sid, "CallSid": sids[number % len(sids)],
                      "CallStatus": "in-progress", "SequenceNumber": str(number),
                      "From": VALID_FROM, "To": TO, "Direction": "outbound-api",
                      "ApiVersion": "2010-04-01"}
            yield Call("POST", url, {
                "X-Twilio-Signature": validator.compute_signature(url, params),
                "I-Twilio-Idempotency-Token": f"bench-{number}",
                "Content-Type": "application/x-www-form-urlencoded",
            }, urlencode(params).encode(), 204)

    def hello(self) -> Call:
        return Call("GET", f"{self.base_url}/api/hello?{urlencode({'name': 'benchmark'})}")

    def named(self, function: str) -> Call:
        return getattr(self, function)()


# --- added latency ------------------------------------------------------------


async def added_latency(host: Host, account: Account, direct: DirectTwilio,
                        store: bool = False) -> list[Row]:
    """Sequential requests through the host against the same Twilio request made directly.

    hello through the same host is measured alongside: the latency the app
    adds is judged against what the host itself costs a request. The six
    kinds are interleaved in a shuffled order each round, so a noisy moment
    on the machine hits all of them alike.
    """
    calls = Calls(host.url, account)
    async with load.session(1) as client:
        measured: dict[str, Callable[[], Awaitable[None]]] = {
            "send_sms": lambda: load.send(client, calls.send_sms()),
            "make_call": lambda: load.send(client, calls.make_call()),
            "naive_send_sms": lambda: load.send(client, calls.naive_send_sms()),
            "direct send_sms": lambda: direct.send_sms(TO, TEXT),
            "direct make_call": lambda: direct.make_call(TO, calls.twiml_url),
            "hello": lambda: load.send(client, calls.hello()),
        }
        samples: dict[str, list[float]] = {name: [] for name in measured}
        order = list(measured)
        for round_ in range(LATENCY_WARMUP + LATENCY_ROUNDS):
            random.shuffle(order)
            for name in order:
                started = time.perf_counter()
                await measured[name]()
                if round_ >= LATENCY_WARMUP:
                    samples[name].append(time.perf_counter() - started)
    return verdicts.latency_rows(samples, store)


# --- connections --------------------------------------------------------------


async def connections(host: Host, account: Account, sandbox: Sandbox) -> Row:
    """TCP connections the sandbox accepted for 100 sequential sends; run on a fresh host."""
    calls = Calls(host.url, account)
    counts = {}
    async with load.session(1) as client:
        for function in ("send_sms", "naive_send_sms"):
            await sandbox.state()  # the control connection is open before the reset
            await sandbox.reset()
            for _ in range(SEQUENTIAL_SENDS):
                await load.send(client, calls.named(function))
            state = await sandbox.state()
            if state["requests"] != SEQUENTIAL_SENDS:
                raise BenchError(f"the sandbox saw {state['requests']} requests, "
                                 f"not {SEQUENTIAL_SENDS}")
            counts[function] = state["connections_accepted"]
    return verdicts.connections_row(counts["send_sms"], counts["naive_send_sms"],
                                    SEQUENTIAL_SENDS)


# --- concurrency --------------------------------------------------------------


class Sender(Protocol):
    """What a burst's baseline sends with: direct twilio calls, or send_sms in process."""

    async def send_sms(self, to: str, body: str) -> object: ...



async def concurrency(host: Host, account: Account, sandbox: Sandbox,
                      direct: DirectTwilio, in_process: InProcessApp | None = None,
                      cpu: list[float] | None = None) -> list[Row]:
    """200 concurrent sends on one worker against 200 concurrent direct async calls.

    The sandbox answers each request after 100 ms, so the figure is how well
    the worker overlaps waiting: sequential handling would take 20 s.
    ``in_process``: the host records each SID in the store, and its bursts are
    also paired with bursts of the same send_sms awaited in this process (the
    same store writes, without the host); None: the host has no store. ``cpu``
    gets the host's CPU seconds per send of each measured burst.
    """
    calls = Calls(host.url, account)
    ours, base, naive = await paired_bursts(calls.send_sms, sandbox, direct,
                                            calls.naive_send_sms, host=host, cpu=cpu)
    figure = (f"concurrency: {CONCURRENT} concurrent, Twilio {CONCURRENCY_LATENCY * 1000:.0f} ms,"
              f" store {'on' if in_process else 'off'}")
    if in_process is None:
        return verdicts.concurrency_rows(figure, ours, base, naive)
    served, same_work, _ = await paired_bursts(calls.send_sms, sandbox, in_process)
    return verdicts.stored_concurrency_rows(figure, ours, base, naive, served, same_work)


async def paired_bursts(make: Callable[[], Call], sandbox: Sandbox, direct: Sender,
                        then: Callable[[], Call] | None = None, *, host: Host | None = None,
                        cpu: list[float] | None = None,
                        ) -> tuple[list[float], list[float], float]:
    """Bursts of ``make()`` through the host, each beside a burst made directly, at Twilio
    100 ms; then one burst of ``then()`` (0.0 without). With ``host`` and ``cpu``, the
    host's CPU seconds (user and system) per request of each measured burst go in ``cpu``."""
    async def direct_burst() -> float:
        started = time.perf_counter()
        async with asyncio.TaskGroup() as group:
            for _ in range(CONCURRENT):
                group.create_task(direct.send_sms(TO, TEXT))
        return time.perf_counter() - started

    await sandbox.set_latency(CONCURRENCY_LATENCY)
    try:
        async with load.session(0) as client:
            ours, base = [], []
            for run in range(CONCURRENCY_RUNS + 1):  # the first opens the connections
                spent = sum(host.cpu_seconds()) if host else 0.0
                host_wall = await load.burst(client, (make() for _ in range(CONCURRENT)))
                if run and host is not None and cpu is not None:
                    cpu.append((sum(host.cpu_seconds()) - spent) / CONCURRENT)
                direct_wall = await direct_burst()
                if run:
                    ours.append(host_wall)
                    base.append(direct_wall)
            extra = (await load.burst(client, (then() for _ in range(CONCURRENT)))
                     if then else 0.0)
    finally:
        await sandbox.set_latency(0)
    return ours, base, extra


# --- throughput ---------------------------------------------------------------


async def throughput(host: Host, account: Account,
                     spent: dict[str, float] | None = None) -> list[Row]:
    """twiml's requests per second through the host against hello-world's, and
    status_callback's (an ETag-checked write each) beside twiml's; ``spent`` gets each
    one's CPU seconds per request.

    Short blocks alternate, in a rotating order each round; each ratio is the
    median of the rounds' ratios, so a burst of load from elsewhere on the
    machine spoils one round, not the figure.
    """
    calls = Calls(host.url, account)
    functions = ("hello", "twiml", "status_callback")
    rates: dict[str, list[float]] = {name: [] for name in functions}
    cpu = {name: [0.0, 0.0] for name in functions}  # the host's user and system seconds
    wall = dict.fromkeys(functions, 0.0)
    async with load.session(THROUGHPUT_CONCURRENCY) as client:
        sids = await _placed_calls(client, calls, CALLBACK_SIDS)
        numbers = itertools.count()

        def block(function: str, size: int) -> Iterator[Call]:
            if function == "status_callback":
                return calls.status_callbacks(sids, itertools.islice(numbers, size))
            return itertools.repeat(calls.named(function), size)

        for function in functions:  # warm-up: connections, first invocations
            await load.drive(client, block(function, 300), THROUGHPUT_CONCURRENCY)
        for round_ in range(THROUGHPUT_ROUNDS):
            shift = round_ % len(functions)
            for function in functions[shift:] + functions[:shift]:
                user, system = host.cpu_seconds()
                took = await load.drive(client, block(function, THROUGHPUT_BLOCK),
                                        THROUGHPUT_CONCURRENCY)
                rates[function].append(THROUGHPUT_BLOCK / took)
                wall[function] += took
                after = host.cpu_seconds()
                cpu[function][0] += after[0] - user
                cpu[function][1] += after[1] - system
    requests = THROUGHPUT_ROUNDS * THROUGHPUT_BLOCK
    if spent is not None:  # the host's CPU seconds per request, by function
        spent.update({function: sum(cpu[function]) / requests for function in functions})

    def per_request(function: str) -> str:
        user, system = (seconds / requests * 1e6 for seconds in cpu[function])
        busy = sum(cpu[function]) / wall[function]
        return (f"{function} {user + system:.0f} µs (user {user:.0f}, system {system:.0f}; "
                f"host busy {busy:.0%} of the time)")

    cpu_ratio = sum(cpu["hello"]) / sum(cpu["twiml"]) if sum(cpu["twiml"]) else math.nan
    figure = f"throughput: requests/s, {THROUGHPUT_CONCURRENCY} in flight"
    return [
        verdicts.throughput_row(
            figure, rates,
            f"the host's CPU per request (/proc): {per_request('twiml')}, "
            f"{per_request('hello')}; hello's CPU over twiml's: {cpu_ratio:.2f}x (a host "
            "busy all the time serves at the rate its CPU per request allows)"),
        verdicts.callback_throughput_row(
            figure, rates,
            f"each callback is signed, then one ETag-checked replace of its row in Azurite (in "
            f"memory, on this machine): the instance remembers the row it wrote when it placed "
            f"the call or took its last report; over {CALLBACK_SIDS} calls; the host's CPU per "
            f"request: {per_request('status_callback')}"),
    ]


async def _placed_calls(client: aiohttp.ClientSession, calls: Calls, count: int) -> list[str]:
    """``count`` calls placed through the app, ``THROUGHPUT_CONCURRENCY`` at a time."""
    sids: list[str] = []
    while len(sids) < count:
        sids += await asyncio.gather(*(_placed_call(client, calls) for _ in range(
            min(THROUGHPUT_CONCURRENCY, count - len(sids)))))
    return sids


async def _placed_call(client: aiohttp.ClientSession, calls: Calls) -> str:
    """A call placed through the app (the store records its SID), for callbacks to report on."""
    call = calls.make_call()
    async with client.request(call.method, call.url, headers=call.headers,
                              data=call.body) as response:
        answer = await response.json()
    if response.status != 201:
        raise BenchError(f"make_call answered {response.status}: {answer}")
    return answer["sid"]


# --- memory -------------------------------------------------------------------


async def memory(host: Host, account: Account) -> Row:
    """Host RSS after 10,000 mixed requests against after the first 100 (a fresh host)."""
    calls = Calls(host.url, account)
    mix = itertools.cycle((calls.send_sms(), calls.make_call(), calls.twiml()))
    async with load.session(MEMORY_CONCURRENCY) as client:
        await load.drive(client, itertools.islice(mix, MEMORY_EARLY), MEMORY_CONCURRENCY)
        early = host.rss_kib()
        await load.drive(client, itertools.islice(mix, MEMORY_TOTAL - MEMORY_EARLY),
                         MEMORY_CONCURRENCY)
        late = host.rss_kib()
    return verdicts.memory_row(f"memory: host RSS after {MEMORY_TOTAL:,} mixed requests",
                               early, late, MEMORY_EARLY)


# --- cold start ---------------------------------------------------------------

async def cold_start(apps: dict[str, Path], start: Callable[[Path], Awaitable[Host]],
                     account: Account) -> list[Row]:
    """Spawn to first answer, one fresh host per function (its app holds only it).

    One unmeasured round first (it writes the bytecode caches), then the
    median of the measured rounds, the functions interleaved in each.
    """
    times: dict[str, list[float]] = {name: [] for name in apps}
    for round_ in range(COLD_RUNS + 1):
        for name, app_dir in apps.items():
            started = time.perf_counter()
            host = await start(app_dir)
            try:
                async with load.session(1) as client:
                    await load.send(client, Calls(host.url, account).named(name))
                took = time.perf_counter() - started
            finally:
                await host.stop()
            if round_:
                times[name].append(took)
    return verdicts.cold_start_rows(times)


# --- import time --------------------------------------------------------------

_IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)")


def import_profile(app_dir: Path, module: str, env: dict[str, str]) -> ImportProfile:
    """``python -X importtime -c 'import MODULE'`` run in the app folder."""
    result = children.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        cwd=app_dir, env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    if result.returncode != 0:
        raise BenchError(f"import {module} failed:\n{result.stderr[-2000:]}")
    total, modules = None, set()
    for line in result.stderr.splitlines():
        found = _IMPORT_LINE.match(line)
        if found:
            modules.add(found[4])
            if found[4] == module and not found[3]:
                total = int(found[2])
    if total is None:
        raise BenchError(f"no import time for {module} in -X importtime's output")
    return ImportProfile(total, frozenset(modules))


async def import_times(app_dir: Path, functions: tuple[str, ...],
                       env: dict[str, str]) -> list[Row]:
    """Each function module's import (cumulative), against hello-world's; who pulls twilio.rest."""
    runs: dict[str, list[ImportProfile]] = {name: [] for name in ("hello", *functions)}
    for round_ in range(IMPORT_RUNS + 1):  # the first writes the bytecode caches
        for name in runs:
            profile = await asyncio.to_thread(import_profile, app_dir, name, env)
            if round_:
                runs[name].append(profile)
    return verdicts.import_rows(runs)
