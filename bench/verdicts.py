"""What the measured numbers say: each figure's ratio, its target and whether it holds.

Pure functions of the numbers ``figures.py`` measures, kept apart from the
measuring so that they can be tested on made-up figures: a slip here would
print "yes" beside a missed target, and no benchmark run would notice.
Every target is on a ratio of two numbers taken in the same run, so it holds
on a slower or busier machine as well as on this one.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Row:
    """One line of the table: our figure beside its baseline."""

    figure: str
    ours: str
    baseline: str
    ratio: float | None
    target: str
    holds: bool | None  # None: shown for comparison, no target
    load: str | None = None  # the function to profile the host with if the target is missed
    detail: str | None = None  # what explains the figure, for the document


@dataclass(frozen=True)
class Limit:
    """A target on a ratio: at most ``bound`` (or at least, for rates)."""

    bound: float
    at_least: bool = False

    def holds(self, ratio: float | None) -> bool:
        """Never true for a ratio that could not be computed."""
        if ratio is None or math.isnan(ratio):
            return False
        return ratio >= self.bound if self.at_least else ratio <= self.bound

    def __str__(self) -> str:
        return f"{'>=' if self.at_least else '<='} {self.bound:g}x"


@dataclass(frozen=True)
class ImportProfile:
    cumulative_us: int
    modules: frozenset[str]


# Latency the app adds over a direct Twilio request, against what the host
# itself costs a request (hello through the same host): the app's own work
# (parsing, policy, the twilio client) may cost up to this many hellos.
ADDED_LATENCY = {50: Limit(2.0), 99: Limit(3.0)}
CONCURRENCY = Limit(1.5)
#: 200 sends with the store on, against direct calls that store nothing.
CONCURRENCY_STORE = Limit(2.0)
#: The same with an Idempotency-Key on every send and every limit counted.
CONCURRENCY_GUARDED = Limit(3.0)
#: The host's burst against the same send_sms awaited in process: what the host adds.
HOST_OVER_IN_PROCESS = Limit(1.2)
#: status_callback's requests per second against twiml's (both Twilio's webhooks).
CALLBACK_THROUGHPUT = Limit(0.6, at_least=True)
#: The worker's CPU per send, store on (and with a key and the limits) against store off.
CPU_STORE = Limit(1.5)
CPU_GUARDED = Limit(2.0)
#: Store round trips after Twilio answers a send: the transaction (and the key's answer).
ROUND_TRIPS = {False: 1, True: 2}
#: What the concurrency against direct calls costs with the store on.
STORE_WORK = (
    "direct calls write nothing; every send here reads the opt-outs and notes its sender "
    "while Twilio sends, then writes one transaction (its item, delivery and thread "
    "summary; with a key and limits, the reservation and five counters before Twilio and "
    "the kept answer after), each request about 1 ms of CPU in azure-data-tables and as "
    "much again in Azurite, on the same cores. The host's own cost is the (host) row's, "
    "against the same send_sms awaited in process")
STORE_LATENCY = (
    "the store's round trips, each a millisecond or two against Azurite: send_sms reads the "
    "opt-outs and notes its sender while Twilio sends, then writes one transaction (item, "
    "delivery, thread summary); make_call likewise. The target is judged on the host "
    "without the store")
IN_PROCESS = ("the baseline awaits the repository's send_sms 200 at once in the benchmark's "
              "process, with the host's settings, store and sandbox: the same store writes, "
              "without the Functions host (bench/in_process.py)")
COLD_START = Limit(1.2)
THROUGHPUT = Limit(0.8, at_least=True)
MEMORY_GROWTH = Limit(1.05)
LATENCY_PAIRS = (("send_sms", "direct send_sms"), ("make_call", "direct make_call"),
                 ("naive_send_sms", "direct send_sms"))


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def paired_ratio(ours: Sequence[float], baseline: Sequence[float]) -> float:
    """Median of the ratios of measurements taken side by side: robust to a noisy round."""
    return statistics.median(o / b for o, b in zip(ours, baseline, strict=True))


def percentile(samples: Sequence[float], p: float) -> float:
    """Nearest-rank percentile: an observed value, never an interpolation."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def ratio_or_nan(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.nan


def latency_rows(samples: Mapping[str, Sequence[float]], store: bool = False) -> list[Row]:
    """Added latency (through the host minus direct), as a multiple of hello's latency.

    Judged on a host without the store: the app's own work. With the store on,
    the rows are shown (``STORE_LATENCY``), as the store's checks are.
    """
    rows = []
    for function, direct_name in LATENCY_PAIRS:
        for p, limit in ADDED_LATENCY.items():
            ours = percentile(samples[function], p)
            base = percentile(samples[direct_name], p)
            hello = percentile(samples["hello"], p)
            ratio = ratio_or_nan(ours - base, hello)
            shown = store or function.startswith("naive")
            rows.append(Row(
                f"added latency p{p}: {function}{', store on' if store else ''}",
                f"{ms(ours)} (+{(ours - base) * 1000:.2f})",
                f"{ms(base)} direct; hello {ms(hello)}",
                ratio,
                "shown" if shown else f"added {limit} hello",
                None if shown else limit.holds(ratio),
                None if store else function,
                STORE_LATENCY if store and not rows else None,  # said once, on the first
            ))
    return rows


def connections_row(ours: int, naive: int, sends: int) -> Row:
    return Row(
        f"connections for {sends} sequential sends (1 worker)",
        f"{ours} send_sms", f"{naive} naive_send_sms", ours / naive if naive else None,
        "1 per worker", ours <= 1,
    )


def concurrency_rows(figure: str, ours: Sequence[float], base: Sequence[float],
                     naive: float) -> list[Row]:
    """Wall time of a burst through the host against the same burst made directly."""
    base_wall = statistics.median(base)
    return [
        concurrency_row(f"{figure}: send_sms", ours, base),
        Row(f"{figure}: naive_send_sms", f"{naive:.3f} s", f"{base_wall:.3f} s direct async",
            ratio_or_nan(naive, base_wall), "shown", None),
    ]


def stored_concurrency_rows(figure: str, ours: Sequence[float], base: Sequence[float],
                            naive: float, served: Sequence[float],
                            same_work: Sequence[float]) -> list[Row]:
    """With the store on: the bursts beside direct calls (shown: those store nothing), and
    beside the same send_sms awaited in process (the target: what the host adds)."""
    beside_direct, naive_row = concurrency_rows(figure, ours, base, naive)
    return [judged(beside_direct, CONCURRENCY_STORE, STORE_WORK), naive_row,
            stored_concurrency_row(f"{figure}: send_sms", served, same_work)]


def stored_concurrency_row(figure: str, served: Sequence[float],
                           same_work: Sequence[float]) -> Row:
    """Bursts through the host against the same send_sms bursts awaited in process."""
    ratio = paired_ratio(served, same_work)
    return Row(f"{figure} (host)", f"{statistics.median(served):.3f} s",
               f"{statistics.median(same_work):.3f} s the same send_sms in process", ratio,
               str(HOST_OVER_IN_PROCESS), HOST_OVER_IN_PROCESS.holds(ratio), "send_sms",
               IN_PROCESS)


def judged(row: Row, limit: Limit, detail: str) -> Row:
    """The row against another target than its function's, and why."""
    return replace(row, target=str(limit), holds=limit.holds(row.ratio), detail=detail)


def round_trip_row(after: float, before: float, first_after: int, callback: float,
                   keyed: bool) -> Row:
    """Store calls after Twilio answered a send, counted in process (a count, no time)."""
    bound = ROUND_TRIPS[keyed]
    then = 9 if keyed else 4  # in the layout measured on 2026-12-01 (issue 23)
    what = ", Idempotency-Key and all limits" if keyed else ""
    return Row(
        f"store round trips after Twilio per send{what}", f"{after:g}",
        f"{then} in the 2026-12-01 layout; {before:g} before Twilio", None,
        f"<= {bound}", after <= bound, None,
        f"counted in process by wrapping the store's methods, over the sends of one thread "
        f"(bench/round_trips.py). A thread new to the instance costs its first send "
        f"{first_after} after Twilio (it reads the thread's summary first, and for a thread "
        f"new to the owner its block row); each of Twilio's reports (sent, delivered) on the "
        f"instance that sent costs {callback:g}")


def cpu_row(what: str, ours: Sequence[float], store_off: Sequence[float],
            limit: Limit) -> Row:
    """The worker's CPU per send (medians of the bursts), against the host without a store."""
    mine, base = statistics.median(ours), statistics.median(store_off)
    ratio = ratio_or_nan(mine, base)
    return Row(f"worker CPU per send: {what}", f"{mine * 1e6:.0f} µs",
               f"{base * 1e6:.0f} µs store off", ratio, str(limit), limit.holds(ratio),
               "send_sms",
               "the host process's user and system time (/proc) over each 200-send burst at "
               "Twilio 100 ms, per send; Azurite's own CPU is not the worker's and is not in it")


def concurrency_row(figure: str, ours: Sequence[float], base: Sequence[float]) -> Row:
    """send_sms bursts through the host against the same bursts made directly."""
    ratio = paired_ratio(ours, base)
    return Row(figure, f"{statistics.median(ours):.3f} s",
               f"{statistics.median(base):.3f} s direct async", ratio, str(CONCURRENCY),
               CONCURRENCY.holds(ratio), "send_sms")


def store_latency_row(guarded: Sequence[float], plain: Sequence[float]) -> Row:
    """p50 of a send with an Idempotency-Key and every limit counted, beside a plain send."""
    ours, base = percentile(guarded, 50), percentile(plain, 50)
    return Row("added latency p50: the store's checks (Idempotency-Key + 5 limits)",
               f"{ms(ours)} (+{(ours - base) * 1000:.2f})",
               f"{ms(base)} send_sms, store on, no key or limit",
               ratio_or_nan(ours, base), "shown", None, "send_sms",
               "one reservation, five counters read and written at once, the kept answer")


def throughput_row(figure: str, rates: Mapping[str, Sequence[float]], detail: str) -> Row:
    """twiml's requests per second against hello's, block by block."""
    ratio = paired_ratio(rates["twiml"], rates["hello"])
    return Row(figure, f"{statistics.median(rates['twiml']):.0f}/s twiml",
               f"{statistics.median(rates['hello']):.0f}/s hello", ratio, str(THROUGHPUT),
               THROUGHPUT.holds(ratio), "twiml", detail)


def callback_throughput_row(figure: str, rates: Mapping[str, Sequence[float]],
                            detail: str) -> Row:
    """status_callback's requests per second beside twiml's (both Twilio's webhooks)."""
    ratio = paired_ratio(rates["status_callback"], rates["twiml"])
    return Row(f"{figure}: status_callback",
               f"{statistics.median(rates['status_callback']):.0f}/s status_callback",
               f"{statistics.median(rates['twiml']):.0f}/s twiml", ratio,
               str(CALLBACK_THROUGHPUT), CALLBACK_THROUGHPUT.holds(ratio), None, detail)


def memory_row(figure: str, early_kib: int, late_kib: int, early_requests: int) -> Row:
    ratio = ratio_or_nan(late_kib, early_kib)
    return Row(figure, f"{late_kib / 1024:.1f} MiB",
               f"{early_kib / 1024:.1f} MiB after {early_requests}", ratio,
               f"growth {MEMORY_GROWTH}", MEMORY_GROWTH.holds(ratio))


def cold_start_rows(times: Mapping[str, Sequence[float]]) -> list[Row]:
    """Each function's spawn-to-first-answer against hello's; twiml's is the target."""
    base = statistics.median(times["hello"])
    rows = []
    for name, taken in times.items():
        if name == "hello":
            continue
        ratio = paired_ratio(taken, times["hello"])
        is_target = name == "twiml"
        rows.append(Row(
            f"cold start: spawn to first answer, {name}",
            f"{statistics.median(taken) * 1000:.0f} ms", f"{base * 1000:.0f} ms hello", ratio,
            str(COLD_START) if is_target else "shown",
            COLD_START.holds(ratio) if is_target else None,
        ))
    return rows


def import_rows(runs: Mapping[str, Sequence[ImportProfile]]) -> list[Row]:
    """Each function module's import against hello's; twiml must not pull twilio.rest."""
    hello = [float(p.cumulative_us) for p in runs["hello"]]
    rows = []
    for name, profiles in runs.items():
        if name == "hello":
            continue
        times = [float(p.cumulative_us) for p in profiles]
        rest = any("twilio.rest" in p.modules for p in profiles)
        is_target = name == "twiml"
        rows.append(Row(
            f"import time: import {name}",
            f"{statistics.median(times) / 1000:.1f} ms, {'imports' if rest else 'no'} twilio.rest",
            f"{statistics.median(hello) / 1000:.1f} ms hello", paired_ratio(times, hello),
            "no twilio.rest" if is_target else "shown",
            not rest if is_target else None,
        ))
    return rows
