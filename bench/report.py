"""The table the benchmark prints, and ``docs/performance.md`` written from it.

The document is regenerated whole by every run, machine and date included, so
its figures are never mixed from two runs or two machines.
"""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime
from pathlib import Path

from bench import figures as f
from bench.app import ROOT
from bench.figures import Row

DOC = ROOT / "docs" / "performance.md"
COMMAND = "make bench"
HEADER = ("figure", "ours", "baseline", "ratio", "target", "holds?")


def verdict(row: Row) -> str:
    if row.holds is None:
        return "shown"
    return "yes" if row.holds else "MISSED"


def table(rows: list[Row]) -> str:
    """A Markdown table: readable as printed, and rendered in the doc."""
    cells = [HEADER] + [
        (row.figure, row.ours, row.baseline,
         f"{row.ratio:.2f}x" if row.ratio is not None else "-", row.target, verdict(row))
        for row in rows
    ]
    widths = [max(len(line[i]) for line in cells) for i in range(len(HEADER))]

    def line(values: tuple[str, ...]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), rule, *(line(c) for c in cells[1:])])


def summary(rows: list[Row]) -> str:
    """Which targets hold, then what explains the figures that carry a detail."""
    targets = [row for row in rows if row.holds is not None]
    missed = [row.figure for row in targets if not row.holds]
    if not missed:
        lines = [f"All {len(targets)} targets hold."]
    else:
        lines = [f"{len(targets) - len(missed)} of {len(targets)} targets hold; MISSED: "
                 + "; ".join(missed)]
    lines += [f"\n- {row.figure}: {row.detail}" for row in rows if row.detail]
    return "\n".join(lines)


def machine() -> dict[str, str]:
    """What the figures depend on: CPU, cores, memory, Python, OS."""
    return {
        "CPU": _proc_field("/proc/cpuinfo", "model name") or platform.processor() or "unknown",
        "cores": str(os.cpu_count()),
        "RAM": _memory(),
        "Python": f"{platform.python_version()} ({platform.python_implementation()})",
        "OS": f"{_os_name()}, kernel {platform.release()}",
    }


def _proc_field(path: str, name: str) -> str | None:
    try:
        for line in Path(path).read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == name:
                return value.strip()
    except OSError:
        pass
    return None


def _memory() -> str:
    total = _proc_field("/proc/meminfo", "MemTotal")
    return f"{int(total.split()[0]) / 1024 / 1024:.1f} GiB" if total else "unknown"


def _os_name() -> str:
    try:
        return platform.freedesktop_os_release().get("PRETTY_NAME", platform.system())
    except OSError:
        return platform.system()


def document(rows: list[Row], seconds: float, profiles: str = "",
             now: datetime | None = None) -> str:
    when = (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    specs = "\n".join(f"- {name}: {value}" for name, value in machine().items())
    return f"""# Performance

Measured by `{COMMAND}` (`.venv/bin/python -m bench`, code in `bench/`) on {when},
in {seconds:.0f} s. Run it again to regenerate this file; it rewrites it whole.

## Machine

{specs}

## Results

{table(rows)}

{summary(rows)}

{profiles}## How to read it

Every figure is ours beside a baseline measured in the same run, moments
apart or interleaved, and the target applies to the ratio: absolute numbers
move with the machine, ratios much less. "shown" rows have no target: they
are there to compare.

- The app runs on `devhost` (Azure's own v1 Python runtime) as one worker
  process, the Twilio sandbox in another, the asyncio load client (aiohttp)
  in a third; loopback only. The app folder is assembled at run time from
  the real `shared/`, `send_sms/`, `make_call/`, `twiml/` and `host.json`,
  plus the baselines in `bench/baselines/`: `hello` (hello world, shaped
  like `twiml`) and `naive_send_sms` (the tutorial's way: sync, `twilio.rest`
  at module top, a new `Client` per request).
- Settings come from the environment only. `TWILIO_VALIDATE_SIGNATURE` stays
  on: the benchmark signs its `twiml` requests as Twilio does. Function keys
  are not enforced (as under Core Tools). The sandbox does not fetch the
  TwiML of created calls, so no callback loads the host during a figure.
- **Added latency**: {f.LATENCY_ROUNDS} rounds of sequential requests, the
  six kinds shuffled in each round; ours is the percentile through the host,
  the baseline the same Twilio request made directly with the twilio
  library's async client. The latency the app adds (the difference, in
  parentheses, ms) is judged against hello's latency through the same host at
  the same percentile, measured in the same rounds: the ratio is added over
  hello, so the target scales with the machine. Judged on a host without
  the store (the app's own work); the same rounds on the store-on host are
  shown beside them, and the store's checks have rows of their own.
- **Concurrency**: {f.CONCURRENT} concurrent `send_sms` on one worker with the
  sandbox answering after {f.CONCURRENCY_LATENCY * 1000:.0f} ms, against {f.CONCURRENT}
  concurrent direct async twilio calls; {f.CONCURRENCY_RUNS} pairs after a warm-up
  pair. Both clients pool at most 100 connections, the library's default and
  the app's. `naive_send_sms` runs on the runtime's thread pool (its default size).
  With the store on, direct calls (which store nothing) are shown, and the
  target is against the same `send_sms` awaited {f.CONCURRENT} at once in the
  benchmark's process with the host's settings, store and sandbox
  (`bench/in_process.py`): the same store writes without the Functions host,
  paired burst by burst likewise.
- **Connections**: TCP connections the sandbox accepted while a fresh host
  served {f.SEQUENTIAL_SENDS} sequential sends.
- **Cold start**: a fresh host process per function whose app holds only
  that function, from spawn to its first answer; {f.COLD_RUNS} rounds after one
  unmeasured round that writes the bytecode caches. **Import time**:
  `python -X importtime -c "import NAME"` in the app folder, the module's
  cumulative time; {f.IMPORT_RUNS} rounds after one unmeasured.
- **Throughput**: requests per second with {f.THROUGHPUT_CONCURRENCY} in flight, in
  {f.THROUGHPUT_ROUNDS} rounds of a block of {f.THROUGHPUT_BLOCK:,} hello and a block of
  {f.THROUGHPUT_BLOCK:,} `twiml`, alternating which goes first.
- **Memory**: VmRSS of a fresh host after the first {f.MEMORY_EARLY} and after
  {f.MEMORY_TOTAL:,} requests ({f.MEMORY_CONCURRENCY} in flight) mixing `send_sms`,
  `make_call` and a signed `twiml` GET.

Where several rounds are taken, ours and the baseline are medians and the
ratio is the median of the rounds' ratios, so a burst of load from elsewhere
on the machine spoils one round, not the figure.

A MISSED target does not fail the command (it exits 0); only a benchmark
that could not run exits non-zero. To see where time goes, profile the host
under the same load, e.g. `py-spy record -o profile.svg --pid <host pid>`.
"""


def write_document(rows: list[Row], seconds: float, profiles: str = "") -> Path:
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(document(rows, seconds, f"{profiles}\n" if profiles else ""))
    return DOC
