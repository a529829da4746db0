"""The SMS-pumping profile of ``make load``: the rate limits stop it, legitimate users go on.

Pumping looks like this: a function key pulled out of the mobile app sends
many messages to consecutive numbers in one range of a country the app's
users are not in, first from one address, then spread over many accounts at
once, and many messages to a few numbers. The app runs with the limits below
(App Service Authentication emulated, a fresh in-memory Azurite): each phase
must get exactly what its limit lets through, every refusal must be a 429
``rate-limited`` with the RateLimit fields, and the signed-in users sending
ordinary messages at the same time must all be served.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass, field

import aiohttp

from devhost.azurite import Azurite
from devhost.easy_auth import bearer
from loadtest.app_process import AppProcess
from loadtest.runner import UNMASKED_NUMBER

ACCOUNT_SID = "AC" + "9b3f7e57" * 4
AUTH_TOKEN = "fake-pumping-auth-token-s3cr3t"  # noqa: S105
PER_CALLER = 25
PER_DESTINATION = 3
PER_COUNTRY = 40
PER_ACCOUNT = 1000
LIMITS = {
    "RATE_LIMIT_SMS_PER_CALLER": str(PER_CALLER),
    "RATE_LIMIT_CALLS_PER_CALLER": "10",
    "RATE_LIMIT_PER_DESTINATION": str(PER_DESTINATION),
    "RATE_LIMIT_PER_COUNTRY": str(PER_COUNTRY),
    "RATE_LIMIT_PER_ACCOUNT": str(PER_ACCOUNT),
}
#: One range of Nigerian mobile numbers, walked in order as pumpers do.
RANGE = "+23480312{:05d}"
#: One French mobile number texted again and again.
REPEATED = "+33612345678"
#: Where the legitimate users' friends are: 30 numbers, one message each.
LEGITIMATE = "+1415555{:04d}"
RATE_LIMITED = "urn:twilio-functions:problem:rate-limited"


@dataclass
class Phase:
    name: str
    expected: int  # how many the limits should let through
    limit: str  # the limit that should stop the rest
    answers: list[tuple[int, dict[str, str], dict]] = field(default_factory=list)

    @property
    def through(self) -> int:
        return sum(1 for status, _, _ in self.answers if status == 201)


@dataclass
class PumpingReport:
    phases: list[Phase]
    legitimate: list[int]
    pumped_records: int
    log: str
    checks: list[tuple[str, bool, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(passed for _, passed, _ in self.checks)

    def render(self) -> str:
        lines = [f"SMS-pumping profile: limits per caller {PER_CALLER}/h, per destination "
                 f"{PER_DESTINATION}/day, per country {PER_COUNTRY}/h, per account "
                 f"{PER_ACCOUNT}/day"]
        for phase in self.phases:
            statuses = Counter(status for status, _, _ in phase.answers)
            lines.append(f"  {phase.name}: {len(phase.answers)} sent, {phase.through} let "
                         f"through (limit {phase.expected}), "
                         + "  ".join(f"{s}: {n}" for s, n in sorted(statuses.items())))
        served = sum(1 for status in self.legitimate if status == 201)
        lines.append(f"  legitimate users meanwhile: {served} of {len(self.legitimate)} served")
        lines.append(f"  sandbox: {self.pumped_records} messages reached the pumped numbers")
        lines.append("checks:")
        lines += [f"  {'PASS' if passed else 'FAIL'}  {name}{f'  ({detail})' if detail else ''}"
                  for name, passed, detail in self.checks]
        lines.append("RESULT: " + ("PASS" if self.ok else "FAIL"))
        return "\n".join(lines)


def run_pumping() -> PumpingReport:
    """Start the app on a fresh store, pump, serve legitimate users, check."""
    azurite = Azurite.start()
    app = AppProcess({"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                      "STATE_STORAGE": azurite.connection_string, **LIMITS}, auth=True)
    try:
        app.start()
        phases, legitimate, state = asyncio.run(_drive(app))
    finally:
        status = app.stop()
        azurite.stop()
    pumped = [m for m in state["messages"] if m["to"] == REPEATED or m["to"].startswith(
        RANGE.split("{")[0])]
    report = PumpingReport(phases, legitimate, len(pumped), app.log())
    report.checks = _verify(report)
    report.checks.append(("the app stopped cleanly on Ctrl-C", status == 0, f"exit {status}"))
    return report


async def _drive(app: AppProcess) -> tuple[list[Phase], list[int], dict]:
    one_address = Phase("one address, consecutive numbers, one at a time", PER_CALLER,
                        "sms-per-caller")
    many_accounts = Phase("80 accounts at once, the same range", PER_COUNTRY - PER_CALLER,
                          "per-country")
    few_numbers = Phase("20 accounts at once, one number", PER_DESTINATION, "per-destination")
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        async def sms(to: str, user: str | None = None) -> tuple[int, dict[str, str], dict]:
            """Status 0 when no answer came back: the checks then fail, with the counts."""
            headers = {"Authorization": bearer(user)} if user else {}
            try:
                async with session.post(f"{app.base_url}/api/send_sms", headers=headers,
                                        json={"to": to, "body": "Your code is 123456"},
                                        ) as response:
                    return (response.status, dict(response.headers),
                            json.loads(await response.read() or b"{}"))
            except (aiohttp.ClientError, TimeoutError, ValueError):
                return 0, {}, {}

        for n in range(PER_CALLER + 15):
            one_address.answers.append(await sms(RANGE.format(n)))
        pumping = asyncio.gather(
            *(sms(RANGE.format(100 + n), f"pumper{n}") for n in range(80)),
            *(sms(REPEATED, f"repeater{n}") for n in range(20)))
        served = asyncio.gather(*(sms(LEGITIMATE.format(2600 + n), f"user{n % 10}")
                                  for n in range(30)))
        pumped, legitimate = await asyncio.gather(pumping, served)
        many_accounts.answers, few_numbers.answers = pumped[:80], pumped[80:]
        async with session.get(f"{app.sandbox_url}/_sandbox/state") as response:
            state = await response.json()
    return [one_address, many_accounts, few_numbers], [s for s, _, _ in legitimate], state


def _verify(report: PumpingReport) -> list[tuple[str, bool, str]]:
    checks = []
    for phase in report.phases:
        checks.append((f"{phase.name}: exactly the limit let through", phase.through ==
                       phase.expected, f"{phase.through} of {phase.expected}"))
        refused = [(h, body) for status, h, body in phase.answers if status != 201]
        right = [body.get("type") == RATE_LIMITED and body.get("limit") == phase.limit
                 and h.get("Retry-After", "").isdigit()
                 and h.get("RateLimit-Policy", "").startswith(f'"{phase.limit}";')
                 and h.get("RateLimit", "").startswith(f'"{phase.limit}";r=0;')
                 for h, body in refused]
        checks.append((f"{phase.name}: the rest refused by {phase.limit} with the "
                       "RateLimit fields", all(right), f"{sum(right)} of {len(refused)}"))
    through = sum(phase.through for phase in report.phases)
    checks.append(("nothing beyond the limits reached Twilio", report.pumped_records == through,
                   f"{report.pumped_records} messages for {through} let through"))
    checks.append(("every legitimate user served", all(s == 201 for s in report.legitimate),
                   f"{report.legitimate.count(201)} of {len(report.legitimate)}"))
    refusals = sum(len(phase.answers) - phase.through for phase in report.phases)
    tripped = report.log.count("rate_limit=tripped")
    checks.append(("one log line per refusal", tripped == refusals,
                   f"{tripped} lines for {refusals} refusals"))
    checks.append(("no 500", "status=500" not in report.log, ""))
    unmasked = UNMASKED_NUMBER.findall(report.log)
    checks.append(("no unmasked number in the log", not unmasked, f"{len(unmasked)} found"))
    return checks
