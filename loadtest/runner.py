"""Run the mix against the live app with Twilio failing now and then; prove nothing broke.

The sandbox fails about ``fault_rate`` of the Twilio requests (500, 503, 429,
dropped connections, unreadable bodies; seeded). Delay faults are left out on
purpose: Twilio (and the sandbox) still creates a resource whose request the
app gave up on, so a timed-out send would leave a record without a 201 and
the one-to-one accounting below could no longer be exact.

What the run must show, each a named check in the report:

- every request got its documented answer, or (only if it reached Twilio) the
  answer of an injected fault; never a 500;
- the faulted answers add up to exactly what the sandbox says it injected;
- every refusal is an RFC 9457 problem document;
- every Twilio request was made exactly once, and every 201 matches exactly one
  sandbox record by SID and tag (nothing lost, nothing sent twice, no record
  without a 201); every call's TwiML was then fetched, signed, and answered;
- no secret in any response or log line, no unmasked number in the app's or
  host's log lines, no query string in the access log;
- the host still serves a normal request afterwards.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
from yarl import URL

from loadtest import plan as mix
from loadtest.app_process import ROOT, AppProcess

# Fake and recognisable, so the leak checks can look for them (the sandbox accepts any).
ACCOUNT_SID = "AC" + "10ad7e57" * 4
AUTH_TOKEN = "fake-load-auth-token-s3cr3t"  # noqa: S105
FUNCTION_KEY = "fake-function-key-s3cr3t"

#: The mixed fault kinds (the sandbox's Fault fields), each drawn with an equal share.
FAULTS: tuple[dict[str, Any], ...] = (
    {"kind": "status", "status": 500},
    {"kind": "status", "status": 503},
    {"kind": "rate_limit", "retry_after": 2},
    {"kind": "drop"},
    {"kind": "malformed"},
)
PROBLEM_JSON = "application/problem+json"
PROBLEM_PREFIX = "urn:twilio-functions:problem:"
FAULT_SLUGS = {502: "twilio-unavailable", 429: "twilio-rate-limited"}
TERMINAL_CALL_STATES = frozenset({"completed", "failed", "busy", "no-answer", "canceled"})
SETTLE_SECONDS = 20.0

_TAG = re.compile(r"load-\d+")
UNMASKED_NUMBER = re.compile(r"\+\d{8,15}")
_LOG_RECORD = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (?P<level>\w+) \[(?P<function>[^\]]*)\] "
    r"(?P<logger>[\w.]+): (?P<message>.*)$")


@dataclass(frozen=True)
class LoadConfig:
    """How much load, how faulty a Twilio, and the (fake, recognisable) secrets to use."""

    requests: int = 1000
    concurrency: int = 50
    fault_rate: float = 0.05
    seed: int = 2024
    account_sid: str = ACCOUNT_SID
    auth_token: str = AUTH_TOKEN
    function_key: str | None = FUNCTION_KEY  # None: keys not enforced
    twilio_timeout: float = 5.0
    request_timeout: float = 15.0  # guard per request
    time_limit: float = 120.0  # guard for the whole drive
    app_dir: Path = ROOT  # the function app to load (a copy, to try the checks on a broken one)


@dataclass
class Outcome:
    """What one request got: status 0 and ``error`` when no HTTP answer came back."""

    planned: mix.Planned
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    seconds: float
    error: str | None = None

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def document(self) -> dict[str, Any] | None:
        """The JSON body, None when it is not a JSON object."""
        try:
            value = json.loads(self.body)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def slug(self) -> str | None:
        kind = (self.document() or {}).get("type")
        return kind.removeprefix(PROBLEM_PREFIX) if isinstance(kind, str) else None


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str = ""


@dataclass
class LoadReport:
    config: LoadConfig
    outcomes: list[Outcome]
    after: Outcome | None
    state: dict[str, Any]
    log: str
    seconds: float
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(check.passed for check in self.checks)

    def render(self) -> str:
        return render(self)


# --- running -------------------------------------------------------------------


def run_load(config: LoadConfig) -> LoadReport:
    """Start the app, drive the load, stop the app, check everything; never raises on a check."""
    env = {"TWILIO_ACCOUNT_SID": config.account_sid, "TWILIO_AUTH_TOKEN": config.auth_token,
           "TWILIO_TIMEOUT_SECONDS": str(config.twilio_timeout)}
    if config.function_key is not None:
        env["FUNCTIONS_LOCAL_KEY"] = config.function_key
    # The checks need every record the run creates: keep at least that many.
    app = AppProcess(env, enforce_keys=config.function_key is not None, app_dir=config.app_dir,
                     sandbox_history=config.requests)
    started = time.monotonic()
    try:
        app.start()
        plan = mix.Plan(app.base_url, config.auth_token, config.function_key, config.account_sid)
        planned = mix.build(plan, config.requests, config.seed)
        outcomes, after, state = asyncio.run(_drive(app, plan, planned, config))
    finally:
        status = app.stop()
    report = LoadReport(config, outcomes, after, state, app.log(), time.monotonic() - started)
    report.checks = verify(report, "".join(app.stdout_lines))
    report.checks.append(Check("the app stopped cleanly on Ctrl-C", status == 0,
                               f"exit status {status}"))
    return report


async def _drive(app: AppProcess, plan: mix.Plan, planned: list[mix.Planned],
                 config: LoadConfig) -> tuple[list[Outcome], Outcome, dict[str, Any]]:
    connector = aiohttp.TCPConnector(limit=config.concurrency)
    timeout = aiohttp.ClientTimeout(total=config.request_timeout)
    async with (asyncio.timeout(config.time_limit),
                aiohttp.ClientSession(connector=connector, timeout=timeout) as session):
        for number, fault in enumerate(FAULTS):
            await _control(session, "POST", f"{app.sandbox_url}/_sandbox/faults", {
                **fault, "probability": per_fault_probability(config.fault_rate),
                "seed": config.seed + number})
        semaphore = asyncio.Semaphore(config.concurrency)

        async def bounded(request: mix.Planned) -> Outcome:
            async with semaphore:
                return await send(session, app.base_url, request)

        outcomes = await asyncio.gather(*(bounded(request) for request in planned))
        await _control(session, "DELETE", f"{app.sandbox_url}/_sandbox/faults")
        probe = mix.sms_json(plan, len(planned), random.Random(config.seed))  # noqa: S311
        after = await send(session, app.base_url, probe)
        state = await _settled_state(session, app.sandbox_url)
    return list(outcomes), after, state


def per_fault_probability(rate: float) -> float:
    """Each fault's chance, so that one of them hits a request with probability ``rate``.

    The sandbox tries its faults in order, drawing for each until one fires.
    """
    return 1 - (1 - rate) ** (1 / len(FAULTS))


async def send(session: aiohttp.ClientSession, base_url: str, request: mix.Planned) -> Outcome:
    """Send one planned request verbatim (its URL is signed as written) and time it."""
    url = URL(f"{base_url}{request.path}", encoded=True)
    started = time.perf_counter()
    try:
        async with session.request(request.method, url, headers=request.headers,
                                   data=request.body) as response:
            body = await response.read()
            return Outcome(request, response.status, list(response.headers.items()), body,
                           time.perf_counter() - started)
    except (aiohttp.ClientError, TimeoutError) as error:
        return Outcome(request, 0, [], b"", time.perf_counter() - started, repr(error))


async def _control(session: aiohttp.ClientSession, method: str, url: str,
                   body: dict[str, Any] | None = None) -> Any:
    # JSON, a body-less one too: the sandbox's controls take nothing else.
    async with session.request(method, url, json=body,
                               headers={"Content-Type": "application/json"}) as response:
        response.raise_for_status()
        text = await response.text()
    return json.loads(text) if text else None


async def _settled_state(session: aiohttp.ClientSession, sandbox_url: str) -> dict[str, Any]:
    """The sandbox state once every call has been answered (or after SETTLE_SECONDS)."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        state = await _control(session, "GET", f"{sandbox_url}/_sandbox/state")
        settled = all(c.get("status") in TERMINAL_CALL_STATES for c in state["calls"])
        if settled or time.monotonic() > deadline:
            return state
        await asyncio.sleep(0.1)


# --- checking --------------------------------------------------------------------


def verify(report: LoadReport, stdout: str) -> list[Check]:
    """Every check of the run, in the order the report lists them."""
    config, outcomes, state = report.config, report.outcomes, report.state
    everything = [*outcomes, *([report.after] if report.after else [])]
    return [
        _answered(everything),
        _as_documented(outcomes),
        _no_500(everything),
        _faults_add_up(outcomes, state["faults_applied"]),
        _faults_injected(state["faults_applied"], config.fault_rate),
        _problem_documents(everything),
        _twilio_called_once(everything, state),
        *_records_match(everything, state),
        _calls_answered(state),
        _no_secrets(everything, report.log, stdout, config),
        *_log_hygiene(report.log),
        Check("the host still serves after the load",
              report.after is not None and report.after.status == 201,
              f"status {report.after.status if report.after else None}"),
    ]


def _examples(items: list[Outcome], limit: int = 3) -> str:
    shown = [f"#{o.planned.index} {o.planned.kind} -> {o.status or o.error} "
             f"{o.body[:160]!r}" for o in items[:limit]]
    return "; ".join(shown)


def _answered(outcomes: list[Outcome]) -> Check:
    failed = [o for o in outcomes if o.status == 0]
    return Check("every request got an HTTP answer", not failed,
                 f"{len(failed)} without: {_examples(failed)}" if failed else "")


def is_fault_answer(outcome: Outcome) -> bool:
    """A refusal only an injected Twilio fault explains, on a request that reached Twilio."""
    return (outcome.planned.reaches_twilio and outcome.status in FAULT_SLUGS
            and outcome.slug() == FAULT_SLUGS[outcome.status])


def _as_documented(outcomes: list[Outcome]) -> Check:
    wrong = []
    for outcome in outcomes:
        planned = outcome.planned
        expected = outcome.status == planned.expected and (
            planned.problem is None or outcome.slug() == planned.problem)
        if not (expected or is_fault_answer(outcome)):
            wrong.append(outcome)
    return Check("every answer is the documented one (or, for Twilio requests, a fault's)",
                 not wrong, f"{len(wrong)} unexpected: {_examples(wrong)}" if wrong else "")


def _no_500(outcomes: list[Outcome]) -> Check:
    errors = [o for o in outcomes if o.status >= 500 and not is_fault_answer(o)]
    return Check("no 5xx but 502 on injected faults (never 500, no 504 without delays)",
                 not errors, f"{len(errors)}: {_examples(errors)}" if errors else "")


def _faults_add_up(outcomes: list[Outcome], applied: dict[str, int]) -> Check:
    faulted = [o for o in outcomes if is_fault_answer(o)]
    coded = sum(1 for o in faulted if o.status == 502
                and (o.document() or {}).get("twilio_code") in (20500, 20503))
    uncoded = sum(1 for o in faulted if o.status == 502
                  and "twilio_code" not in (o.document() or {}))
    limited = sum(1 for o in faulted if o.status == 429)
    seen = {"status": coded, "drop+malformed": uncoded, "rate_limit": limited, "delay": 0}
    injected = {"status": applied.get("status", 0),
                "drop+malformed": applied.get("drop", 0) + applied.get("malformed", 0),
                "rate_limit": applied.get("rate_limit", 0), "delay": applied.get("delay", 0)}
    passed = seen == injected and len(faulted) == sum(injected.values())
    return Check("fault answers match the faults injected, kind by kind", passed,
                 f"answered {seen}, injected {injected}")


def _faults_injected(applied: dict[str, int], rate: float) -> Check:
    total = sum(applied.values())
    return Check("faults were injected (else the fault checks prove nothing)",
                 total > 0 or rate == 0, f"{total} applied")


def _problem_documents(outcomes: list[Outcome]) -> Check:
    bad = []
    for outcome in (o for o in outcomes if o.status >= 400):
        document = outcome.document() or {}
        content_type = (outcome.header("Content-Type") or "").split(";")[0].strip()
        well_formed = (content_type == PROBLEM_JSON
                       and {"type", "title", "status", "detail"} <= document.keys()
                       and document["status"] == outcome.status
                       and str(document["type"]).startswith(PROBLEM_PREFIX))
        retry_after = outcome.header("Retry-After") or ""
        if not well_formed or (outcome.status == 429 and not retry_after.isdigit()):
            bad.append(outcome)
    return Check("every refusal is application/problem+json (429s with Retry-After)", not bad,
                 f"{len(bad)} not: {_examples(bad)}" if bad else "")


def _twilio_called_once(outcomes: list[Outcome], state: dict[str, Any]) -> Check:
    expected = sum(1 for o in outcomes if o.planned.reaches_twilio)
    return Check("each Twilio-bound request reached the sandbox exactly once (no retries)",
                 state["requests"] == expected,
                 f"{state['requests']} REST requests for {expected} Twilio-bound requests")


def record_tag(record: dict[str, Any]) -> str | None:
    """The load tag a sandbox record carries: in the SMS body, or the call's TwiML URL."""
    text = record.get("body") or ""
    if record.get("sid", "").startswith("CA"):
        url = (record.get("request") or {}).get("Url") or ""
        text = " ".join(parse_qs(urlsplit(url).query).get("message", []))
    found = _TAG.search(text)
    return found.group() if found else None


def _records_match(outcomes: list[Outcome], state: dict[str, Any]) -> list[Check]:
    created: dict[str, list[Outcome]] = {}
    for outcome in (o for o in outcomes if o.status == 201):
        sid = str((outcome.document() or {}).get("sid"))
        created.setdefault(sid, []).append(outcome)
    records = [*state["messages"], *state["calls"]]
    per_sid = Counter(record["sid"] for record in records)
    lost = sorted(set(created) - set(per_sid))
    orphans = sorted(set(per_sid) - set(created))
    twice = sorted({sid for sid, items in created.items() if len(items) > 1}
                   | {sid for sid, count in per_sid.items() if count > 1})
    mismatched = []
    for record in records:
        for outcome in created.get(record["sid"], []):
            document = outcome.document() or {}
            if record_tag(record) != outcome.planned.tag or record["to"] != document.get("to"):
                mismatched.append(record["sid"])
    tags = Counter(record_tag(record) for record in records)
    sent_twice = sorted(str(tag) for tag, count in tags.items() if count > 1)
    return [
        Check("every 201 has its sandbox record (lost = 0)", not lost,
              f"{len(created)} created, {len(records)} recorded, lost {len(lost)} {lost[:3]}"),
        Check("nothing created twice (duplicated = 0)", not twice and not sent_twice,
              f"duplicated {len(twice) + len(sent_twice)} {(twice + sent_twice)[:3]}"),
        Check("no sandbox record without a 201", not orphans,
              f"orphans {len(orphans)} {orphans[:3]}"),
        Check("each record is the one its request asked for (tag and number)", not mismatched,
              f"mismatched {len(mismatched)} {mismatched[:3]}"),
    ]


def _calls_answered(state: dict[str, Any]) -> Check:
    unanswered = [c["sid"] for c in state["calls"]
                  if c.get("status") != "completed" or c.get("twiml_status") != 200]
    return Check("every call's TwiML was fetched (signed) and played", not unanswered,
                 f"{len(state['calls']) - len(unanswered)}/{len(state['calls'])} answered"
                 + (f"; e.g. {unanswered[:3]}" if unanswered else ""))


def _no_secrets(outcomes: list[Outcome], log: str, stdout: str, config: LoadConfig) -> Check:
    secrets = [s for s in (config.auth_token, config.function_key) if s]
    places = []
    for outcome in outcomes:
        text = outcome.body.decode("utf-8", "replace") + repr(outcome.headers)
        if any(secret in text for secret in secrets):
            places.append(f"response #{outcome.planned.index}")
    # The launcher's curls carry the (local) function key on purpose, for pasting.
    keyed_curl = f"x-functions-key: {config.function_key}"
    banner = "\n".join(line for line in stdout.splitlines()
                       if not (line.lstrip().startswith("curl ") and keyed_curl in line))
    for name, text in (("log", log), ("stdout", banner)):
        if any(secret in text for secret in secrets):
            places.append(name)
    return Check("no auth token or function key in any response, header or log line",
                 not places, ", ".join(places[:5]))


def log_records(log: str) -> list[dict[str, str]]:
    """The log as records (level, function, logger, message); continuation lines kept."""
    records: list[dict[str, str]] = []
    for line in log.splitlines():
        match = _LOG_RECORD.match(line)
        if match:
            records.append(match.groupdict())
        elif records:
            records[-1]["message"] += "\n" + line
        else:
            records.append({"level": "", "function": "", "logger": "", "message": line})
    return records


def _log_hygiene(log: str) -> list[Check]:
    records = log_records(log)
    # The sandbox stands in for Twilio and logs like it; the app's and host's lines are
    # what ships to Application Insights.
    ours = [r for r in records if not r["logger"].startswith("twilio_sandbox")]
    unmasked = [r["message"] for r in ours if UNMASKED_NUMBER.search(r["message"])]
    queries = [r["message"] for r in records
               if r["logger"] == "aiohttp.access" and ("?" in r["message"]
                                                       or "code=" in r["message"])]
    crashes = [r["message"] for r in records
               if "Traceback" in r["message"] or "(Failed," in r["message"]
               or "failed unexpectedly" in r["message"]]
    return [
        Check("no unmasked phone number in the app's or host's log lines", not unmasked,
              f"{len(unmasked)} of {len(ours)} lines: {unmasked[:2]}"),
        Check("the access log carries no query string (no code=)", not queries,
              f"{len(queries)}: {queries[:2]}"),
        Check("no function failure or traceback logged", not crashes,
              f"{len(crashes)}: {[c[:200] for c in crashes[:2]]}"),
    ]


# --- reporting ---------------------------------------------------------------------


def _percentile(values: list[float], percent: int) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[percent - 1]


def render(report: LoadReport) -> str:
    """The short report: counts, faults, latency, the accounting, then every check."""
    config, outcomes, state = report.config, report.outcomes, report.state
    by_status = Counter(o.status for o in outcomes)
    lines = [
        f"load test: {len(outcomes)} requests at concurrency {config.concurrency}, "
        f"Twilio faults {config.fault_rate:.0%} (seed {config.seed}), "
        f"{report.seconds:.1f} s including start and stop",
        "by status:   " + "  ".join(f"{s}: {n}" for s, n in sorted(by_status.items())),
        "by function:",
    ]
    for function in sorted({o.planned.function for o in outcomes}):
        counts = Counter(o.status for o in outcomes if o.planned.function == function)
        lines.append(f"  {function:<10}" + "  ".join(f"{s}: {n}" for s, n in
                                                      sorted(counts.items())))
    applied = state["faults_applied"]
    twilio_bound = sum(1 for o in outcomes if o.planned.reaches_twilio)
    lines.append("faults applied: " + ", ".join(f"{k} {v}" for k, v in applied.items() if v)
                 + f" ({sum(applied.values())} of {twilio_bound} Twilio requests)")
    latencies = sorted(o.seconds * 1000 for o in outcomes)
    if latencies:
        lines.append(f"latency: p50 {_percentile(latencies, 50):.1f} ms, "
                     f"p95 {_percentile(latencies, 95):.1f} ms, max {latencies[-1]:.1f} ms")
    created = sum(1 for o in outcomes if o.status == 201) + int(
        bool(report.after and report.after.status == 201))
    records = len(state["messages"]) + len(state["calls"])
    lines.append(f"sandbox: {records} records ({len(state['messages'])} messages, "
                 f"{len(state['calls'])} calls) for {created} created")
    lines.append("checks:")
    for check in report.checks:
        detail = f"  ({check.detail})" if check.detail else ""
        lines.append(f"  {'PASS' if check.passed else 'FAIL'}  {check.name}{detail}")
    lines.append("RESULT: " + ("PASS" if report.ok else "FAIL"))
    return "\n".join(lines)
