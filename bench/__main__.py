"""``make bench``: measure the app against its baselines and print the table.

With ``--write`` (``make bench WRITE=1``) the figures also replace
docs/performance.md; without it the committed document is left alone, so a
run on a noisy or slower machine does not change the repository.

Exits 0 whenever the benchmark ran, targets missed or not (the table says
MISSED); 1 only when it could not run: a process that did not start, a
request that failed, a figure that could not be taken.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

from bench import (
    callback_profile,
    conversation_list,
    cost,
    figures,
    profile,
    push_webhook,
    report,
    round_trips,
    store_checks,
    table_transport,
    verdicts,
)
from bench.app import APP_FUNCTIONS, BASELINE_FUNCTIONS, WEBHOOK_FUNCTIONS, assemble
from bench.direct import DirectTwilio
from bench.figures import Row
from bench.in_process import InProcessApp
from bench.stack import Account, BenchError, Host, Sandbox, app_environment
from devhost.azurite import Azurite, AzuriteError


def progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


@contextlib.asynccontextmanager
async def running(host: Host) -> AsyncIterator[Host]:
    try:
        yield host
    finally:
        await host.stop()


async def measure(work: Path) -> tuple[list[Row], str]:
    """Every figure, in the issue's order; the host-sharing ones on one host, in a fixed order."""
    account = Account.random()
    app_dir = assemble(work / "app", APP_FUNCTIONS + WEBHOOK_FUNCTIONS + BASELINE_FUNCTIONS)
    cold_apps = {name: assemble(work / f"cold-{name}", (name,))
                 for name in ("hello", *APP_FUNCTIONS)}
    try:
        store = await asyncio.to_thread(Azurite.start)  # in memory, a free port
    except AzuriteError as error:
        raise BenchError(f"{error} (make bench installs it)") from None
    try:
        return await measure_with(work, account, app_dir, cold_apps, store)
    finally:
        store.stop()


async def measure_with(work: Path, account: Account, app_dir: Path,
                       cold_apps: dict[str, Path], store: Azurite) -> tuple[list[Row], str]:
    """The figures, on hosts whose delivery status store is ``store``."""
    sandbox = await Sandbox.start(account, work / "sandbox.log")
    try:
        env = app_environment(account, sandbox.url, store.connection_string)
        logs = itertools.count()

        async def start(app: Path) -> Host:
            return await Host.start(app, env, work / f"host-{next(logs)}.log")

        # Processes of their own first, while nothing else runs.
        progress("import times")
        imports = await figures.import_times(app_dir, APP_FUNCTIONS + WEBHOOK_FUNCTIONS, env)
        progress("cold starts (a fresh host per function and run)")
        cold = await figures.cold_start(cold_apps, start, account)

        direct = DirectTwilio(account, sandbox.url)
        try:
            async with running(await start(app_dir)) as host:
                progress("connections (fresh host)")
                connections = await figures.connections(host, account, sandbox)
                progress("added latency, store on")
                stored_latency = await figures.added_latency(host, account, direct, store=True)
                progress("concurrency")
                cpu_on: list[float] = []
                async with InProcessApp(env) as same_app:
                    concurrency = await figures.concurrency(host, account, sandbox, direct,
                                                            same_app, cpu_on)
                progress("throughput")
                spent: dict[str, float] = {}
                throughput = await figures.throughput(host, account, spent)
                progress("the store's checks (Idempotency-Key and every limit, fresh host)")
                guarded_env = store_checks.guarded_environment(env)
                cpu_guarded: list[float] = []
                async with (running(await Host.start(app_dir, guarded_env,
                                                     work / "host-guarded.log")) as guarded,
                            InProcessApp(guarded_env, keyed=True) as same_app):
                    checks = await store_checks.figures(guarded, host, sandbox, direct, same_app,
                                                        cpu_guarded)
                progress("store round trips per send and per callback (counted, in process)")
                plain_counts = await round_trips.count(env)
                guarded_counts = await round_trips.count(guarded_env, keyed=True)
                callbacks_note = ""
                if any(row.holds is False and row.figure.endswith("status_callback")
                       for row in throughput):
                    progress("profiling status_callback in process (cProfile)")
                    callbacks_note = callback_profile.markdown(
                        *await callback_profile.profile(env))
                counted = [verdicts.round_trip_row(c.after, c.before, c.first_after, c.callback,
                                                   keyed)
                           for c, keyed in ((plain_counts, False), (guarded_counts, True))]
                progress("the conversation list, 2,000 threads vs 1")
                checks += await conversation_list.figures(env)
                progress("twiml's inbound SMS, push on vs off (two fresh hosts)")
                checks += await push_webhook.figures(app_dir, env, account, work)
                served = [*concurrency, *checks, *throughput]
                if any(row.holds is False for row in served):
                    progress("profiling the host under the missed figures' load")
                found, note = await profile.profile_missed(served, host, account, work)
            # Without the store: the app's own latency, and what recording each SID costs.
            no_store = {name: value for name, value in env.items() if name != "STATE_STORAGE"}
            async with running(await Host.start(app_dir, no_store,
                                                work / "host-no-store.log")) as host:
                progress("added latency, store off (fresh host)")
                latency = await figures.added_latency(host, account, direct)
                progress("concurrency, store off (fresh host)")
                cpu_off: list[float] = []
                without = await figures.concurrency(host, account, sandbox, direct, cpu=cpu_off)
            concurrency = [*concurrency[:1], without[0], *concurrency[1:]]
            cpu_rows = [verdicts.cpu_row("store on vs off", cpu_on, cpu_off, verdicts.CPU_STORE),
                        verdicts.cpu_row("Idempotency-Key and all limits vs store off",
                                         cpu_guarded, cpu_off, verdicts.CPU_GUARDED)]
            costs = cost.section(cost.Spent(
                cpu_send=statistics.median(cpu_on), cpu_send_guarded=statistics.median(cpu_guarded),
                cpu_callback=spent["status_callback"], calls_send=plain_counts.per_send,
                calls_send_guarded=guarded_counts.per_send, calls_callback=plain_counts.callback,
                first_send_extra=plain_counts.first_after - round(plain_counts.after)))
        finally:
            await direct.close()
        progress("Table Storage clients: CPU per operation (in process)")
        transports = await table_transport.figures(store.connection_string, table_transport.Served(
            spent["status_callback"], spent["twiml"], statistics.median(cpu_on),
            statistics.median(cpu_off)))

        await sandbox.reset()  # forget the resources stored so far
        async with running(await start(app_dir)) as host:
            progress(f"memory ({figures.MEMORY_TOTAL:,} mixed requests, fresh host)")
            memory = await figures.memory(host, account)
    finally:
        await sandbox.stop()
    rows = [*latency, *stored_latency, *concurrency, *checks, *counted, *cpu_rows, *transports,
            connections, *cold, *imports, *throughput, memory]
    if any(row.holds is False for row in (*latency, *cold, *imports, memory)):
        note = " ".join(filter(None, [note, "Latency without the store, cold start, import and "
                                     "memory figures are not profiled here: see the import "
                                     "time rows, or run "
                                     "`python -X importtime` / tracemalloc on the host."]))
    profiles = profile.markdown(found, note)
    if callbacks_note:
        profiles = (f"{profiles}\n{callbacks_note}" if profiles
                    else f"## Profiles of missed targets\n\n{callbacks_note}")
    return rows, f"{costs}\n{profiles}" if profiles else costs


async def run(write: bool = False) -> int:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        try:
            rows, profiles = await measure(Path(tmp))
        except (BenchError, ExceptionGroup, aiohttp.ClientError, OSError, TimeoutError) as error:
            for reason in _leaves(error):
                print(f"bench: could not run: {str(reason) or repr(reason)}", file=sys.stderr)
            return 1
    seconds = time.perf_counter() - started
    specs = report.machine()
    print(f"{specs['CPU']}, {specs['cores']} cores, {specs['RAM']}, Python {specs['Python']}\n")
    print(report.table(rows))
    print(f"\n{report.summary(rows)}")
    if profiles:
        print(f"\n{profiles}")
    sys.stdout.flush()
    progress(finish(rows, seconds, profiles, write=write))
    return 0


def finish(rows: list[Row], seconds: float, profiles: str, *, write: bool) -> str:
    """Write the document only when asked; the closing progress line says which happened."""
    if not write:
        return f"done in {seconds:.0f} s; {report.DOC.name} left as it is (--write to update it)"
    doc = report.write_document(rows, seconds, profiles)
    return f"done in {seconds:.0f} s; wrote {doc.relative_to(report.ROOT)}"


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Measure the app against baselines run on the same host; print the table.",
    )
    parser.add_argument("--write", action="store_true",
                        help="also rewrite docs/performance.md with the figures")
    return asyncio.run(run(write=parser.parse_args(argv).write))


if __name__ == "__main__":
    sys.exit(main())
