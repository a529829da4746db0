"""Where the host's time goes when a target is missed: py-spy on the live host process.

A MISSED row should come with its reason, so for each function whose row
missed, the host is sampled (py-spy, when installed: it is optional) while
it serves that function, and the document lists the app's and the host's
hottest frames. Without py-spy the document says how to get the profile.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench import load
from bench.figures import Calls, Row
from bench.stack import Account, Host
from devhost import children

SECONDS = 6
RATE = 200  # samples per second: py-spy pauses the process for each one
CONCURRENCY = 16
TOP = 8
TOP_APP = 10
_LINE = re.compile(r":\d+\)$")
# Frames of the app (the folders copied into the app dir) and of what hosts it.
APP_FILES = ("shared/", "twiml/", "send_sms/", "make_call/", "hello/", "naive_send_sms/")
HOST_FILES = ("devhost/", "azure_functions_runtime_v1/", "azure/functions/", "aiohttp/",
              "logging/", "asyncio/selector_events")
LOOP_FRAME = "(devhost/host.py)"  # on every stack of the event loop's thread


@dataclass(frozen=True)
class Profile:
    """The shares of samples (0-1) of the hottest frames while the host served ``function``."""

    function: str
    samples: int
    app: list[tuple[float, str]]  # inclusive: time spent in the frame and what it calls
    host: list[tuple[float, str]]
    hottest: list[tuple[float, str]]  # self: time spent in the frame's own code


def py_spy() -> str | None:
    """py-spy from the venv or PATH."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return shutil.which("py-spy", path=path)


async def profile_missed(rows: list[Row], host: Host, account: Account,
                         work: Path) -> tuple[list[Profile], str | None]:
    """Profiles for the functions of missed rows; or why there are none."""
    functions = list(dict.fromkeys(r.load for r in rows if r.holds is False and r.load))
    if not functions:
        return [], None
    tool = py_spy()
    if tool is None:
        return [], ("py-spy is not installed: `.venv/bin/pip install py-spy` and rerun "
                    "to have the host profiled under the missed figures' load.")
    profiles = []
    for function in functions:
        out = work / f"profile-{function}.txt"
        reason = await _record(tool, host, Calls(host.url, account), function, out)
        if reason is not None:
            return profiles, reason
        try:
            collapsed = await asyncio.to_thread(out.read_text)
        except OSError as error:
            return profiles, f"py-spy wrote no profile: {error}"
        profiles.append(summarize(function, collapsed))
    return profiles, None


async def _record(tool: str, host: Host, calls: Calls, function: str, out: Path) -> str | None:
    spy = await children.start_async(
        tool, "record", "--pid", str(host.process.pid), "--duration", str(SECONDS),
        "--rate", str(RATE), "--format", "raw", "-o", str(out),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    finished = asyncio.create_task(spy.communicate())
    deadline = time.monotonic() + 3 * SECONDS + 10
    async with load.session(CONCURRENCY) as client:
        while not finished.done():
            if time.monotonic() > deadline:  # py-spy hangs: stop it, and the load with it
                spy.kill()
                await finished
                return "py-spy did not finish its recording in time"
            await load.drive(client, itertools.repeat(calls.named(function), 200), CONCURRENCY)
    _, stderr = await finished
    if spy.returncode != 0:
        return f"py-spy could not profile the host: {stderr.decode(errors='replace')[-300:]}"
    return None


def summarize(function: str, collapsed: str) -> Profile:
    """Inclusive and self shares from py-spy's collapsed stacks (``f1;f2;... count``)."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [_LINE.sub(")", frame) for frame in stack.split(";")]
        if not any(LOOP_FRAME in frame for frame in frames):
            continue  # another thread (the runtime's pool for sync functions): not the loop
        total += int(count)
        for frame in set(frames):
            inclusive[frame] += int(count)
        own[frames[-1]] += int(count)

    def top(counter: collections.Counter[str], files: tuple[str, ...] | None,
            below: float = 1.0) -> list[tuple[float, str]]:
        chosen = [(n / total, frame) for frame, n in counter.most_common()
                  if n / total < below
                  and (files is None or any(f"({f}" in frame or f"/{f}" in frame for f in files))]
        return chosen[:TOP_APP if files is APP_FILES else TOP]

    if total == 0:
        return Profile(function, 0, [], [], [])
    # Frames above 80% are the loop and the HTTP server's scaffolding around everything.
    return Profile(function, total, top(inclusive, APP_FILES),
                   top(inclusive, HOST_FILES, below=0.8), top(own, None))


def markdown(profiles: list[Profile], note: str | None) -> str:
    """The document's section on missed targets ("" when every target held)."""
    if not profiles and note is None:
        return ""
    parts = ["## Profiles of missed targets", ""]
    if note:
        parts += [note, ""]
    for p in profiles:
        parts += [f"### The host serving `{p.function}` ({p.samples} py-spy samples)", "",
                  "Share of the host's busy samples in each frame and what it calls. py-spy "
                  "pauses the process for each sample, which over-counts frames that sit in "
                  "a system call (socket writes): the host's system time from /proc, in the "
                  "details above, is the truer share of those.", ""]
        for title, shares in (("app (and the library code it calls)", p.app),
                              ("host and runtime", p.host),
                              ("hottest own code", p.hottest)):
            listed = ", ".join(f"`{frame}` {share:.0%}" for share, frame in shares)
            parts.append(f"- {title}: {listed or '-'}")
        main = next((share for share, frame in p.app
                     if frame.startswith(f"main ({p.function}/")), None)
        if main is not None and main < 1:
            parts += ["", f"`{p.function}`'s `main` takes {main:.0%} of the loop's busy time: "
                      f"one of its requests costs {1 / (1 - main):.2f}x what the host alone "
                      f"spends on a request, which bounds its throughput against a function "
                      f"that does nothing at about {1 - main:.2f}x."]
        parts.append("")
    return "\n".join(parts)
