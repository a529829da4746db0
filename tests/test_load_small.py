"""The load runner (``python -m loadtest``) at a size ``make test`` can afford.

The full run (1,000 requests at concurrency 50) is its own make target; here
200 requests at concurrency 20 go through the same code, CLI included. Seed 7
makes the sandbox apply every fault kind of the mix at least once (the draws
are seeded, so the count is the same on every run). The checker itself is
then tested on made-up runs: a check that cannot fail proves nothing.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable

import pytest

from loadtest import plan as mix
from loadtest.__main__ import main
from loadtest.runner import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    FUNCTION_KEY,
    LoadConfig,
    LoadReport,
    Outcome,
    verify,
)


def test_small_load_passes_every_check(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["--requests", "200", "--concurrency", "20", "--seed", "7", "--profile", "mixed"])
    printed = capsys.readouterr().out
    assert status == 0, printed
    assert "RESULT: PASS" in printed
    assert "lost 0" in printed and "duplicated 0" in printed and "orphans 0" in printed
    faults = next(line for line in printed.splitlines() if line.startswith("faults applied"))
    for kind in ("status", "rate_limit", "drop", "malformed"):
        assert f"{kind} " in faults, printed


# --- the checker on made-up runs -------------------------------------------------

PLAN = mix.Plan("http://127.0.0.1:7071", AUTH_TOKEN, FUNCTION_KEY, ACCOUNT_SID)
PROBLEM = [("Content-Type", "application/problem+json")]
LOG_LINE = "2026-01-01 00:00:00,000 {level} [{function}] {logger}: {message}"


def log(*records: tuple[str, str, str]) -> str:
    return "\n".join(LOG_LINE.format(level="INFO", function=function, logger=logger,
                                     message=message) for function, logger, message in records)


def clean_run() -> LoadReport:
    """A consistent run: one SMS created and recorded, one faulted, one refused, one TwiML."""
    rng = random.Random(1)
    sms, faulted = mix.sms_json(PLAN, 0, rng), mix.sms_json(PLAN, 1, rng)
    refused, twiml = mix.premium(PLAN, 2, rng), mix.twiml_get(PLAN, 3, rng)
    after = mix.sms_json(PLAN, 4, rng)
    to = json.loads(sms.body or b"")["to"]
    after_to = json.loads(after.body or b"")["to"]
    created = [("Content-Type", "application/json")]
    outcomes = [
        Outcome(sms, 201, created, json.dumps({"sid": "SM1", "to": to}).encode(), 0.01),
        Outcome(faulted, 502, PROBLEM, json.dumps({
            "type": "urn:twilio-functions:problem:twilio-unavailable", "title": "Upstream failure",
            "status": 502, "detail": "try again later"}).encode(), 0.01),
        Outcome(refused, 403, PROBLEM, json.dumps({
            "type": "urn:twilio-functions:problem:destination-refused", "title": "Refused",
            "status": 403, "detail": "premium-rate numbers are not allowed"}).encode(), 0.01),
        Outcome(twiml, 200, [("Content-Type", "text/xml")], b"<Response/>", 0.01),
    ]
    state = {
        "messages": [{"sid": "SM1", "to": to, "body": "Your code is ready (load-0)"},
                     {"sid": "SM2", "to": after_to, "body": "Your code is ready (load-4)"}],
        "calls": [], "requests": 3,
        "faults_applied": {"status": 0, "rate_limit": 0, "delay": 0, "drop": 1, "malformed": 0},
    }
    after_outcome = Outcome(after, 201, created,
                            json.dumps({"sid": "SM2", "to": after_to}).encode(), 0.01)
    text = log(("send_sms", "twilio_functions", "function=send_sms status=201 to=+1•••••••2671"),
               ("host", "aiohttp.access", "POST /api/send_sms 201 1.0ms"))
    return LoadReport(LoadConfig(), outcomes, after_outcome, state, text, 1.0)


def failed_checks(report: LoadReport) -> set[str]:
    return {check.name for check in verify(report, "") if not check.passed}


def test_a_consistent_run_passes() -> None:
    assert failed_checks(clean_run()) == set()


def lose_the_record(r: LoadReport) -> None:
    r.state["messages"].pop(0)


def record_twice(r: LoadReport) -> None:
    r.state["messages"].append({**r.state["messages"][0], "sid": "SM3"})


def answer_500(r: LoadReport) -> None:
    """What the host answers when a function raises: a bare 500."""
    r.outcomes[2].status, r.outcomes[2].headers, r.outcomes[2].body = 500, [], b""


def refuse_in_plain_text(r: LoadReport) -> None:
    r.outcomes[2].headers = [("Content-Type", "text/plain")]


def fault_not_injected(r: LoadReport) -> None:
    r.state["faults_applied"]["drop"] = 0


def twilio_called_twice(r: LoadReport) -> None:
    r.state["requests"] += 1


def log_a_number(r: LoadReport) -> None:
    r.log += "\n" + log(("send_sms", "twilio_functions", "to=+14155552671"))


def log_the_key_query(r: LoadReport) -> None:
    r.log += "\n" + log(("host", "aiohttp.access", f"POST /api/send_sms?code={FUNCTION_KEY}"))


def echo_the_token(r: LoadReport) -> None:
    r.outcomes[3].headers.append(("X-Debug", AUTH_TOKEN))


@pytest.mark.parametrize(("break_it", "failing"), [
    (lose_the_record, {"every 201 has its sandbox record (lost = 0)"}),
    (record_twice, {"no sandbox record without a 201", "nothing created twice (duplicated = 0)"}),
    (answer_500, {"every answer is the documented one (or, for Twilio requests, a fault's)",
                  "no 5xx but 502 on injected faults (never 500, no 504 without delays)",
                  "every refusal is application/problem+json (429s with Retry-After)"}),
    (refuse_in_plain_text, {"every refusal is application/problem+json (429s with Retry-After)"}),
    (fault_not_injected, {"fault answers match the faults injected, kind by kind",
                          "faults were injected (else the fault checks prove nothing)"}),
    (twilio_called_twice,
     {"each Twilio-bound request reached the sandbox exactly once (no retries)"}),
    (log_a_number, {"no unmasked phone number in the app's or host's log lines"}),
    (log_the_key_query, {"the access log carries no query string (no code=)",
                         "no auth token or function key in any response, header or log line"}),
    (echo_the_token, {"no auth token or function key in any response, header or log line"}),
])
def test_each_check_catches_its_failure(break_it: Callable[[LoadReport], None],
                                        failing: set[str]) -> None:
    report = clean_run()
    break_it(report)
    assert failed_checks(report) == failing


def test_sms_pumping_is_stopped_at_the_limits_and_users_are_served(
        capsys: pytest.CaptureFixture[str]) -> None:
    """`make load`'s pumping profile: each phase gets exactly its limit, no more."""
    status = main(["--profile", "pumping"])
    printed = capsys.readouterr().out
    assert status == 0, printed
    assert "RESULT: PASS" in printed
    assert "legitimate users meanwhile: 30 of 30 served" in printed
    assert "25 let through (limit 25)" in printed and "15 let through (limit 15)" in printed
    assert "3 let through (limit 3)" in printed
