"""The scale-out profile of ``make load``: N instances, one store, one Twilio, exact limits.

As when Azure scales the app out: ``N`` local hosts (``python -m devhost``, each
its own process and port) share one Azurite and one Twilio sandbox
(``--sandbox-url``), behind one address that deals requests round robin
(``loadtest.proxy``). Signed-in users (App Service Authentication emulated)
send SMS and place calls, each under an Idempotency-Key; a share of the keys
is sent twice at once, the second time through another instance. The limits
are tight (``loadtest.scale_design``), so many sends are refused. Then:

- exactly one Twilio message or call per key that got a 201, none for the
  others (the sandbox's history, by each send's tag), and every 201 of a key
  carries the same SID;
- every limit admitted exactly its quota, across instances;
- no lost SID: every 201's SID is in the sandbox and in the store (the app's
  own ``status`` answers it, through any instance);
- every answer is a 201, the 429 of the one limit meant to stop it, or (for a
  key sent twice) a 409 while its first request ran; never a 5xx;
- each instance's CPU time per request it served (``/proc/<pid>/stat``).

Every process it starts ends with it (``devhost.children``).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import secrets
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from devhost.azurite import Azurite
from devhost.easy_auth import bearer
from devhost.ready import end, start_and_wait
from loadtest.app_process import ROOT, AppProcess
from loadtest.proxy import INSTANCE_HEADER, SERVED_PATH
from loadtest.proxy import READY_PREFIX as PROXY_READY
from loadtest.runner import TERMINAL_CALL_STATES, Check, log_records, record_tag
from loadtest.scale_design import Design, Send, design
from twilio_sandbox import READY_PREFIX as SANDBOX_READY

ACCOUNT_SID = "AC" + "5ca1e0e7" * 4
AUTH_TOKEN = "fake-scale-out-auth-token-s3cr3t"  # noqa: S105
START_TIMEOUT = 60.0
SETTLE_SECONDS = 60.0
PROBLEM_PREFIX = "urn:twilio-functions:problem:"
#: Message statuses after which the sandbox sends no more callbacks for it.
TERMINAL_MESSAGE_STATES = frozenset({"delivered", "undelivered", "failed", "sent", "received",
                                     "read", "canceled"})
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_CAUSE = re.compile(r"cause=(\S+)")


@dataclass(frozen=True)
class ScaleOutConfig:
    instances: int = 4
    sends: int = 2000
    retried: float = 0.10  # share of the keys sent twice at once, through two instances
    concurrency: int = 16  # one Azurite on a laptop's cores: more and its calls time out
    seed: int = 2023


@dataclass(frozen=True)
class Answer:
    """What one request of a send got: status 0 when no HTTP answer came back."""

    send: Send
    status: int
    instance: int | None
    document: dict[str, Any]
    replayed: bool
    retry: bool  # the second of a key sent twice


@dataclass
class ScaleOutReport:
    config: ScaleOutConfig
    design: Design
    answers: list[Answer] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    in_store: dict[str, int] = field(default_factory=dict)  # SID -> status's answer
    served: list[int] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # seconds per instance over the sends
    seconds: float = 0.0
    logs: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(check.passed for check in self.checks)

    def render(self) -> str:
        by_status = Counter(a.status for a in self.answers)
        admitted = fresh_sids(self.answers)
        lines = [
            f"scale-out profile: {self.config.instances} instances behind one address, "
            f"{len(self.design.sends)} sends ({len(self.answers)} requests, "
            f"{sum(a.retry for a in self.answers)} retried through another instance), "
            f"concurrency {self.config.concurrency}, {self.seconds:.1f} s",
            "limits: " + ", ".join(f"{k.removeprefix('RATE_LIMIT_').lower()} {v}"
                                   for k, v in self.design.settings.items()),
            "by status: " + "  ".join(f"{s}: {n}" for s, n in sorted(by_status.items())),
            f"admitted {len(admitted)} keys; sandbox: {len(self.state.get('messages', []))} "
            f"messages, {len(self.state.get('calls', []))} calls",
            "per instance (every request it served, Twilio's callbacks and TwiML fetches "
            "included):",
        ]
        for index, (served, cpu) in enumerate(zip(self.served, self.cpu, strict=False)):
            per = f"{cpu / served * 1000:.2f} ms CPU per request" if served else "no requests"
            lines.append(f"  instance {index}: {served} requests, {cpu:.2f} s CPU, {per}")
        causes = store_failures(self.logs)
        if causes:
            lines.append("store failures logged: " + ", ".join(
                f"{cause} {n}" for cause, n in causes.most_common(4)))
        lines.append("checks:")
        lines += [f"  {'PASS' if c.passed else 'FAIL'}  {c.name}"
                  + (f"  ({c.detail})" if c.detail else "") for c in self.checks]
        lines.append("RESULT: " + ("PASS" if self.ok else "FAIL"))
        return "\n".join(lines)


def run_scale_out(config: ScaleOutConfig) -> ScaleOutReport:
    """Start the store, the sandbox, the instances and the proxy; send; check; stop all."""
    run = "so" + secrets.token_hex(4)
    plan = design(config.sends, config.concurrency, run, config.seed)
    report = ScaleOutReport(config, plan)
    started = time.monotonic()
    log_dir = Path(tempfile.mkdtemp(prefix="loadtest-scale-out-"))
    azurite = Azurite.start()
    processes: list[subprocess.Popen[str]] = []
    instances: list[AppProcess] = []
    try:
        sandbox_url = _start(processes, [
            sys.executable, "-m", "twilio_sandbox", "--account-sid", ACCOUNT_SID,
            "--auth-token", AUTH_TOKEN, "--live-like", "--log-level", "WARNING",
            "--history", str(2 * len(plan.sends) + 100)], SANDBOX_READY, log_dir / "sandbox.log")
        env = {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
               "STATE_STORAGE": azurite.connection_string, **plan.settings}
        instances = [AppProcess(env, auth=True, sandbox_url=sandbox_url)
                     for _ in range(config.instances)]
        for instance in instances:
            instance.start()
        proxy_url = _start(processes, [
            sys.executable, "-m", "loadtest.proxy",
            *(arg for i in instances for arg in ("--backend", i.base_url))],
            PROXY_READY, log_dir / "proxy.log")
        asyncio.run(_drive(report, proxy_url, sandbox_url, instances))
    finally:
        for instance in instances:
            instance.stop()
        for process in reversed(processes):
            end(process)
        azurite.stop()
    report.logs = [instance.log() for instance in instances]
    report.seconds = time.monotonic() - started
    report.checks = verify(report)
    return report


def _start(processes: list[subprocess.Popen[str]], command: list[str], prefix: str,
           log: Path) -> str:
    with log.open("w", encoding="utf-8") as stderr:
        started = start_and_wait(command, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                 cwd=str(ROOT), stderr=stderr, prefixes=(prefix,),
                                 wait_for=prefix, timeout=START_TIMEOUT)
    processes.append(started.process)
    if prefix not in started.urls:
        raise RuntimeError(f"{command[2]} did not start: {log.read_text(errors='replace')}")
    return started.urls[prefix]


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far (/proc, Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


async def _drive(report: ScaleOutReport, proxy_url: str, sandbox_url: str,
                 instances: list[AppProcess]) -> None:
    config, count = report.config, len(instances)
    rng = random.Random(config.seed)  # noqa: S311 - a seeded, repeatable order
    pids = [i.process.pid for i in instances if i.process is not None]
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=120)) as session:
        before_cpu = [cpu_seconds(pid) for pid in pids]
        before_served = await _served(session, proxy_url)
        gate = asyncio.Semaphore(config.concurrency)

        async def one(send: Send, pinned: int | None = None, retry: bool = False) -> Answer:
            headers = {"Authorization": bearer(send.user), "Idempotency-Key": send.key}
            if pinned is not None:
                headers[INSTANCE_HEADER] = str(pinned)
            try:
                async with session.post(f"{proxy_url}/api/{send.function}", json=send.body(),
                                        headers=headers) as response:
                    text = await response.read()
                    served = response.headers.get(INSTANCE_HEADER)
                    try:
                        document = json.loads(text)
                    except ValueError:
                        document = {"raw": text[:200].decode("utf-8", "replace")}
                    return Answer(send, response.status, int(served) if served else None,
                                  document if isinstance(document, dict) else {},
                                  response.headers.get("Idempotent-Replayed") == "true", retry)
            except (aiohttp.ClientError, TimeoutError) as error:
                return Answer(send, 0, None, {"error": repr(error)}, False, retry)

        async def send_key(send: Send, twice: bool) -> list[Answer]:
            async with gate:
                if not twice:
                    return [await one(send)]
                first = send.index % count
                return list(await asyncio.gather(one(send, first),
                                                 one(send, (first + 1) % count, retry=True)))

        for phase in (1, 2):
            sends = [s for s in report.design.sends if s.phase == phase]
            rng.shuffle(sends)
            results = await asyncio.gather(*(send_key(s, rng.random() < config.retried)
                                             for s in sends))
            report.answers += [a for answers in results for a in answers]
        report.state = await _settled(session, sandbox_url)
        report.cpu = [cpu_seconds(pid) - before for pid, before in zip(pids, before_cpu,
                                                                       strict=True)]
        after_served = await _served(session, proxy_url)
        report.served = [a - b for a, b in zip(after_served, before_served, strict=True)]
        report.in_store = await _statuses(session, proxy_url, report.answers,
                                          config.concurrency)


async def _served(session: aiohttp.ClientSession, proxy_url: str) -> list[int]:
    async with session.get(f"{proxy_url}{SERVED_PATH}") as response:
        return list((await response.json())["served"])


async def _settled(session: aiohttp.ClientSession, sandbox_url: str) -> dict[str, Any]:
    """The sandbox's state once every call and message has its last status (bounded)."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        async with session.get(f"{sandbox_url}/_sandbox/state") as response:
            state = await response.json()
        settled = (all(c.get("status") in TERMINAL_CALL_STATES for c in state["calls"])
                   and all(m.get("status") in TERMINAL_MESSAGE_STATES
                           for m in state["messages"]))
        if settled or time.monotonic() > deadline:
            return state
        await asyncio.sleep(0.2)


async def _statuses(session: aiohttp.ClientSession, proxy_url: str, answers: list[Answer],
                    concurrency: int) -> dict[str, int]:
    """What the app's ``status`` answers each created SID's sender: 200 when it is stored."""
    gate = asyncio.Semaphore(concurrency)
    created = {sid: user for sid, (user, _) in fresh_sids(answers).items()}

    async def status(sid: str, user: str) -> tuple[str, int]:
        async with gate:
            try:
                async with session.get(f"{proxy_url}/api/status/{sid}",
                                       headers={"Authorization": bearer(user)}) as response:
                    await response.read()
                    return sid, response.status
            except (aiohttp.ClientError, TimeoutError):
                return sid, 0

    return dict(await asyncio.gather(*(status(sid, user) for sid, user in created.items())))


def fresh_sids(answers: list[Answer]) -> dict[str, tuple[str, str]]:
    """Each SID a 201 answered, with its sender and key."""
    return {str(a.document.get("sid")): (a.send.user, a.send.key)
            for a in answers if a.status == 201}


# --- checking ---------------------------------------------------------------------------


def verify(report: ScaleOutReport) -> list[Check]:
    answers, state = report.answers, report.state
    return [
        _answered(answers),
        _no_5xx(answers),
        _as_expected(answers),
        _one_sid_per_key(answers),
        *_one_record_per_key(report),
        *_limits_exact(report),
        _nothing_lost(report),
        _retries_elsewhere(answers),
        Check("every instance served requests", bool(report.served) and all(report.served),
              f"served {report.served}"),
        _clean_logs(report.logs),
        Check("every call and message reached its last status",
              all(c.get("status") in TERMINAL_CALL_STATES for c in state.get("calls", []))
              and all(m.get("status") in TERMINAL_MESSAGE_STATES
                      for m in state.get("messages", []))),
    ]


def _examples(answers: list[Answer], limit: int = 3) -> str:
    return "; ".join(f"{a.send.key} {a.send.function} -> {a.status} "
                     f"{json.dumps(a.document)[:160]}" for a in answers[:limit])


def _answered(answers: list[Answer]) -> Check:
    missing = [a for a in answers if a.status == 0]
    return Check("every request got an HTTP answer", not missing,
                 f"{len(missing)} without: {_examples(missing)}" if missing else "")


def _no_5xx(answers: list[Answer]) -> Check:
    errors = [a for a in answers if a.status >= 500]
    return Check("zero 5xx", not errors, f"{len(errors)}: {_examples(errors)}" if errors else "")


def _slug(answer: Answer) -> str:
    return str(answer.document.get("type", "")).removeprefix(PROBLEM_PREFIX)


def _as_expected(answers: list[Answer]) -> Check:
    """201; the 429 of the send's own limit; 409 in progress for a key sent twice."""
    twice = {a.send.key for a in answers if a.retry}
    wrong = [a for a in answers if not (
        a.status == 201
        or (a.status == 429 and _slug(a) == "rate-limited"
            and a.document.get("limit") == a.send.limit)
        or (a.status == 409 and a.send.key in twice
            and _slug(a) == "idempotency-key-in-progress"))]
    return Check("every answer a 201, the 429 of the one limit meant to stop it, or a 409 "
                 "while a key's first request ran", not wrong,
                 f"{len(wrong)}: {_examples(wrong)}" if wrong else "")


def _one_sid_per_key(answers: list[Answer]) -> Check:
    sids: dict[str, set[str]] = defaultdict(set)
    for answer in (a for a in answers if a.status == 201):
        sids[answer.send.key].add(str(answer.document.get("sid")))
    split = sorted(key for key, found in sids.items() if len(found) > 1)
    replayed = sum(a.replayed for a in answers if a.status == 201)
    return Check("every 201 of a key carries the same SID (retries replayed)", not split,
                 f"{replayed} replays; keys with two SIDs: {split[:3]}")


def _one_record_per_key(report: ScaleOutReport) -> list[Check]:
    records = [*report.state.get("messages", []), *report.state.get("calls", [])]
    tags = Counter(record_tag(r) for r in records)
    admitted = {a.send.tag for a in report.answers if a.status == 201}
    twice = sorted(str(t) for t, n in tags.items() if n > 1)
    unanswered = sorted(str(t) for t in tags if t not in admitted)
    missing = sorted(admitted - set(tags))
    return [
        Check("exactly one Twilio message or call per key admitted (duplicated = 0)",
              not twice and not missing,
              f"{len(records)} records for {len(admitted)} keys admitted; duplicated "
              f"{len(twice)} {twice[:3]}, missing {len(missing)} {missing[:3]}"),
        Check("no Twilio message or call for a key that got no 201", not unanswered,
              f"{len(unanswered)} {unanswered[:3]}"),
    ]


def _limits_exact(report: ScaleOutReport) -> list[Check]:
    admitted_keys = {a.send.key: a.send for a in report.answers if a.status == 201}
    per_scope = Counter((s.limit, s.scope) for s in admitted_keys.values())
    quotas = report.design.quotas
    # A scope one of whose sends failed (5xx: nothing sent) may admit less, never more.
    failed = {(a.send.limit, a.send.scope) for a in report.answers if a.status >= 500}
    wrong = {scope: (per_scope.get(scope, 0), quota) for scope, quota in quotas.items()
             if scope[0] != "per-account" and (per_scope.get(scope, 0) > quota or (
                 per_scope.get(scope, 0) != quota and scope not in failed))}
    by_limit: dict[str, list[int]] = defaultdict(list)
    for (limit, _), quota in quotas.items():
        by_limit[limit].append(quota)
    refused = Counter(str(a.document.get("limit")) for a in report.answers if a.status == 429)
    asked = Counter(s.limit for s in report.design.sends)
    checks = []
    for limit, shares in by_limit.items():  # exactly, but for scopes with a failed send
        if limit == "per-account":
            continue
        bad = {s: v for s, v in wrong.items() if s[0] == limit}
        checks.append(Check(f"{limit}: each of {len(shares)} scopes admitted exactly its quota "
                            "across instances", not bad,
                            f"{sum(shares)} to admit of {asked[limit]} asked, "
                            f"{refused[limit]} refusals" + (f"; wrong {list(bad.items())[:3]}"
                                                            if bad else "")))
    total = len(admitted_keys)
    checks.append(Check("per-account: the account admitted exactly its quota across instances",
                        total == report.design.account_quota or (
                            total < report.design.account_quota and bool(failed)),
                        f"{total} of {report.design.account_quota}, "
                        f"{refused['per-account']} refusals"))
    return checks


def _nothing_lost(report: ScaleOutReport) -> Check:
    created = fresh_sids(report.answers)
    recorded = {r["sid"] for r in [*report.state.get("messages", []),
                                   *report.state.get("calls", [])]}
    not_recorded = sorted(set(created) - recorded)
    not_stored = sorted(sid for sid in created if report.in_store.get(sid) != 200)
    return Check("zero lost SIDs: every 201's SID in the sandbox and in the store",
                 not not_recorded and not not_stored,
                 f"{len(created)} SIDs; not in the sandbox {len(not_recorded)} "
                 f"{not_recorded[:3]}, not in the store {len(not_stored)} "
                 f"{[(s, report.in_store.get(s)) for s in not_stored[:3]]}")


def _retries_elsewhere(answers: list[Answer]) -> Check:
    first = {a.send.key: a.instance for a in answers if not a.retry}
    retries = [a for a in answers if a.retry]
    same = [a for a in retries if a.instance is None or a.instance == first.get(a.send.key)]
    return Check("every retry went through another instance than its first request",
                 bool(retries) and not same, f"{len(retries)} retries, {len(same)} not")


def store_failures(logs: list[str]) -> Counter[str]:
    """The causes the instances logged for store calls that failed (timeouts, conflicts)."""
    return Counter(found.group(1) for log in logs for r in log_records(log)
                   if r["level"] == "ERROR" and (found := _CAUSE.search(r["message"])))


def _clean_logs(logs: list[str]) -> Check:
    crashes = [r["message"][:200] for log in logs for r in log_records(log)
               if "Traceback" in r["message"] or "status=500" in r["message"]
               or "failed unexpectedly" in r["message"]]
    return Check("no traceback or 500 in any instance's log", bool(logs) and not crashes,
                 f"{len(crashes)}: {crashes[:2]}" if crashes else "")
