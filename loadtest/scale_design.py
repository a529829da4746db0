"""What the scale-out profile sends, built so that every limit's outcome is exact.

Limits are counted across instances in the store (``shared.limits``), and a
refused request gives back what it took from the other limits. So that the
count each limit must admit is known in advance, whatever the order and the
instance, the sends fall in groups, each asking one limit scope for twice
its quota (destinations 2.5 times) while every other scope it touches is
asked for no more than its quota, so it can never be full:

- ``sms-per-caller``: users who each send 2x the per-caller SMS quota, every
  SMS to a number of its own;
- ``call-per-caller``: likewise with calls;
- ``per-destination``: numbers each sent to 2.5x its quota, by a different
  user each time;
- ``per-country``: one country (New Zealand) asked twice its quota, by users
  sending two each;
- then, once those are done, ``per-account``: many users sending one or two,
  asking for more than the account's remaining budget. The account quota is
  what the first phase admits (the sum of the groups' quotas) plus that
  remainder, which exceeds what is ever in flight during the first phase, so
  the account never refuses there.

Every other country gets at most the per-country quota in all. Numbers are
valid mobile numbers (``phonenumbers``) walked from each region's example.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import phonenumbers
from phonenumbers import PhoneNumberType

SMS_PER_CALLER = 6
CALLS_PER_CALLER = 3
PER_DESTINATION = 4
#: Each destination of the per-destination group is asked this many times (2.5x).
DESTINATION_ASKS = 10
BINDING_COUNTRY = "NZ"
OTHER_COUNTRIES = ("US", "GB", "FR", "DE", "AU", "CA", "ES", "IT", "NL", "SE", "NO", "DK", "IE",
                   "JP", "BR", "MX", "IN", "ZA", "PL", "BE", "CH", "AT", "PT", "FI", "AR", "CL",
                   "SG")
_MOBILE = (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE)


@dataclass(frozen=True)
class Send:
    """One send under its own Idempotency-Key, and the limit scope meant to stop it."""

    index: int
    key: str
    function: str  # send_sms | make_call
    user: str
    to: str
    limit: str  # the only limit that may refuse it
    scope: str  # that limit's scope: a user, a number, a country, "account"
    phase: int

    @property
    def tag(self) -> str:
        """What its sandbox record carries (SMS body, call message): ``load-<index>``."""
        return f"load-{self.index}"

    def body(self) -> dict[str, str]:
        if self.function == "send_sms":
            return {"to": self.to, "body": f"Your code is ready ({self.tag})"}
        return {"to": self.to, "message": f"Your table is ready {self.tag}"}


@dataclass(frozen=True)
class Design:
    """The sends and the limits' settings; ``quotas`` says what each binding scope admits."""

    sends: list[Send]
    settings: dict[str, str]
    quotas: dict[tuple[str, str], int]  # (limit, scope) -> exactly admitted
    account_quota: int


class Numbers:
    """Fresh valid mobile numbers per region, never the same one twice."""

    def __init__(self) -> None:
        self._next: dict[str, int] = {}

    def take(self, region: str) -> str:
        example = phonenumbers.example_number_for_type(region, PhoneNumberType.MOBILE)
        national = str(example.national_number)
        while True:
            n = self._next.get(region, 0)
            self._next[region] = n + 1
            if n > 9999:
                raise ValueError(f"no more numbers in {region}")
            text = f"+{example.country_code}{national[:-4]}{n:04d}"
            number = phonenumbers.parse(text)
            if (phonenumbers.is_valid_number(number)
                    and phonenumbers.number_type(number) in _MOBILE
                    and phonenumbers.region_code_for_number(number) == region):
                return text


class Countries:
    """Regions for sends that must not trip the per-country limit: each gets at most its quota."""

    def __init__(self, quota: int) -> None:
        self.quota = quota
        self.asked = dict.fromkeys(OTHER_COUNTRIES, 0)

    def place(self, asks: int) -> str:
        region = min(self.asked, key=self.asked.__getitem__)
        if self.asked[region] + asks > self.quota:
            raise ValueError("too many sends for the countries' quotas")
        self.asked[region] += asks
        return region


def design(total: int, concurrency: int, run: str, seed: int) -> Design:
    """About ``total`` sends (at least the few each group needs); users and keys carry ``run``."""
    rng = random.Random(seed)  # noqa: S311 - a seeded, repeatable mix
    country_quota = max(3 * PER_DESTINATION, round(total * 0.075))
    sms_users = max(1, round(total * 0.24 / (2 * SMS_PER_CALLER)))
    call_users = max(1, round(total * 0.09 / (2 * CALLS_PER_CALLER)))
    destinations = max(1, round(total * 0.15 / DESTINATION_ASKS))
    phase_one = (sms_users * 2 * SMS_PER_CALLER + call_users * 2 * CALLS_PER_CALLER
                 + destinations * DESTINATION_ASKS + 2 * country_quota)
    # Beyond what phase one can have in flight (a retried send is two requests).
    remainder = max(round((total - phase_one) * 0.4), 2 * concurrency + 2)
    phase_two = max(total - phase_one, 2 * remainder)
    numbers, countries = Numbers(), Countries(country_quota)
    sends: list[Send] = []

    def add(function: str, user: str, to: str, limit: str, scope: str, phase: int = 1) -> None:
        index = len(sends)
        sends.append(Send(index, f"{run}-{index}", function, f"{run}-{user}", to, limit,
                          scope, phase))

    for u in range(sms_users):
        for _ in range(2 * SMS_PER_CALLER):
            add("send_sms", f"s{u}", numbers.take(countries.place(1)), "sms-per-caller", f"s{u}")
    for u in range(call_users):
        for _ in range(2 * CALLS_PER_CALLER):
            add("make_call", f"c{u}", numbers.take(countries.place(1)), "call-per-caller", f"c{u}")
    for d in range(destinations):
        to = numbers.take(countries.place(DESTINATION_ASKS))
        for n in range(DESTINATION_ASKS):
            add(rng.choice(("send_sms", "make_call")), f"d{d}-{n}", to, "per-destination", to)
    for n in range(2 * country_quota):
        add(("send_sms", "make_call")[n % 2], f"k{n // 2}", numbers.take(BINDING_COUNTRY),
            "per-country", BINDING_COUNTRY)
    for n in range(phase_two):
        add(("send_sms", "make_call")[n % 2], f"a{n // 2}", numbers.take(countries.place(1)),
            "per-account", "account", phase=2)
    quotas = {**{("sms-per-caller", f"s{u}"): SMS_PER_CALLER for u in range(sms_users)},
              **{("call-per-caller", f"c{u}"): CALLS_PER_CALLER for u in range(call_users)},
              **{("per-destination", s.scope): PER_DESTINATION for s in sends
                 if s.limit == "per-destination"},
              ("per-country", BINDING_COUNTRY): country_quota}
    account_quota = sum(quotas.values()) + remainder
    quotas[("per-account", "account")] = account_quota
    settings = {"RATE_LIMIT_SMS_PER_CALLER": str(SMS_PER_CALLER),
                "RATE_LIMIT_CALLS_PER_CALLER": str(CALLS_PER_CALLER),
                "RATE_LIMIT_PER_DESTINATION": str(PER_DESTINATION),
                "RATE_LIMIT_PER_COUNTRY": str(country_quota),
                "RATE_LIMIT_PER_ACCOUNT": str(account_quota)}
    return Design(sends, settings, quotas, account_quota)
