"""What 1,000 sends cost to run, from the figures the benchmark measured.

Flex Consumption bills instance memory x the time an instance executes functions
(GB-seconds), and Table Storage bills per transaction (each REST request). The
worker's CPU per send and per callback is what a busy instance spends (the floor of
its billed time: executions that overlap share it); the store calls are counted, not
timed (``bench.round_trips``). Prices come from the sources named below, with their
dates; a price no source gave is left for the reader, with the formula.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bench.app import ROOT

#: Where the deployment sets the instance size.
BICEP = ROOT / "infra" / "app" / "function-app.bicep"
SENDS = 1000
#: Twilio's status callbacks per message: sent and delivered at least; queued, failed,
#: undelivered or read besides (a call gets up to 4 too).
CALLBACKS = (2, 4)
#: On Demand execution time, USD per GB-second, East US: a third-party summary of
#: Microsoft's price list (Microsoft's pricing page was not among the sources at hand).
FLEX_GB_S_USD = 0.000026
FLEX_SOURCE = ("modal.com, \"Azure Functions pricing: Consumption vs. Flex Consumption\" "
               "(2025-05-22), https://modal.com/blog/azure-function-pricing-guide, "
               "East US; check https://azure.microsoft.com/pricing/details/functions/")


@dataclass(frozen=True)
class Spent:
    """Measured per send and per callback: the worker's CPU seconds, store calls."""

    cpu_send: float
    cpu_send_guarded: float
    cpu_callback: float
    calls_send: float
    calls_send_guarded: float
    calls_callback: float
    first_send_extra: int  # more store calls for a thread's first send in an instance


def instance_memory_gb() -> float:
    """The deployed instance memory (``instanceMemoryMB`` in infra/), in GB."""
    found = re.search(r"instanceMemoryMB:\s*(\d+)", BICEP.read_text())
    if found is None:
        raise ValueError(f"no instanceMemoryMB in {BICEP.relative_to(ROOT)}")
    return int(found[1]) / 1024


def section(spent: Spent) -> str:
    """The document's "Cost per 1,000 sends" section."""
    memory = instance_memory_gb()
    lines = ["## Cost per 1,000 sends", "",
             f"Measured in this run: the worker's CPU per send (the 200-send bursts above) and "
             f"per status callback (the throughput blocks), and the store calls each makes "
             f"(counted, bench/round_trips.py). At the deployed instance memory "
             f"(`instanceMemoryMB` {memory * 1024:.0f} in infra/app/function-app.bicep: "
             f"{memory:g} GB), with {'-'.join(map(str, CALLBACKS))} callbacks per message:", "",
             "| per 1,000 sends | worker CPU | GB-seconds (floor) | execution time, USD "
             "(floor) | Table Storage transactions |",
             "|---|---|---|---|---|"]
    for label, cpu_send, calls_send in (
            ("plain sends", spent.cpu_send, spent.calls_send),
            ("with Idempotency-Key and all limits", spent.cpu_send_guarded,
             spent.calls_send_guarded)):
        for callbacks in CALLBACKS:
            cpu = SENDS * (cpu_send + callbacks * spent.cpu_callback)
            transactions = SENDS * (calls_send + callbacks * spent.calls_callback)
            gb_s = cpu * memory
            lines.append(f"| {label}, {callbacks} callbacks each | {cpu:.2f} s | {gb_s:.2f} | "
                         f"{gb_s * FLEX_GB_S_USD:.5f} | {transactions:,.0f} |")
    lines += [
        "",
        f"- Per send: {spent.cpu_send * 1e3:.2f} ms of worker CPU and {spent.calls_send:g} "
        f"store calls ({spent.cpu_send_guarded * 1e3:.2f} ms and "
        f"{spent.calls_send_guarded:g} with an Idempotency-Key and the five limits); per "
        f"callback on the instance that sent: {spent.cpu_callback * 1e3:.2f} ms and "
        f"{spent.calls_callback:g} call (2 on another instance: a read, then the write). A "
        f"thread's first send in an instance adds {spent.first_send_extra} reads.",
        "- **GB-seconds** = instance memory x the time the instance executes functions. The "
        "worker's CPU time is that time's floor, reached when executions overlap (a busy "
        "instance); a send alone on an instance is billed its whole duration, Twilio's "
        "answer included (about 100-300 ms), so a quiet app pays several times this floor. "
        "The free monthly grant and the price per execution are on the pricing page.",
        f"- **Execution time price**: USD {FLEX_GB_S_USD} per GB-second (On Demand), from "
        f"{FLEX_SOURCE}. Multiply the GB-seconds by the price where you deploy.",
        "- **Table Storage transactions**: every store call is one REST request (an "
        "entity-group transaction, a point read, one page of a query). No price for Table "
        "Storage transactions was found in the sources at hand, nor whether an "
        "entity-group transaction bills as one transaction or one per entity: cost = "
        "transactions / 10,000 x the price per 10,000 transactions on "
        "https://azure.microsoft.com/pricing/details/storage/tables/ for your account's "
        "redundancy (a send's transaction holds 3 or 4 entities: item, delivery, summary, "
        "activity row, and the old activity row's delete).",
        "",
    ]
    return "\n".join(lines)
