"""Twilio's connection overrides: how it sends one webhook, read from the URL's fragment.

Any webhook or callback URL Twilio is given may end in a fragment of overrides,
``https://app.example/cb?q=1#ct=1000&rc=3&rp=5xx,ct``
(https://www.twilio.com/docs/usage/webhooks/webhooks-connection-overrides). Twilio
reads it, then requests the URL without it (a fragment never goes on the wire,
RFC 3986 section 3.5) and signs what it requested, so ``X-Twilio-Signature`` is
computed over the URL without the fragment too. twilio's ``RequestValidator`` strips
no fragment (it only tries the URL with and without its port): it must be given the
URL as requested, which is what the app receives.

- ``ct``: connect timeout, ms, 100 to 10000 (default 5000);
- ``rt``: read timeout, ms, to the answer's first packet and between packets, 100 to
  15000 (15000);
- ``tt``: total time, ms, every attempt included, 100 to 15000 (15000);
- ``rc``: retries, 0 to 5 (1);
- ``rp``: what is retried, comma-separated: ``4xx``, ``5xx``, ``ct`` (no TCP/TLS
  connection), ``rt`` (no answer in time; a partial answer is not retried), ``all``
  (default ``ct``).

So without overrides Twilio retries once, and only when it cannot connect (error
11205, https://www.twilio.com/docs/api/errors/11205): an answer, whatever its status,
is final. When ``tt`` runs out Twilio gives up with error 11203
(https://www.twilio.com/docs/api/errors/11203).

An ``rp`` naming anything else is error 11243, "HTTP retry policy is invalid"
(https://www.twilio.com/docs/api/errors/11243). The page says no more; it is an
ERROR of the 112xx HTTP-retrieval family, whose errors fail the request, and nothing
documents a fall back to the default policy, so the sandbox sends nothing and says
why: a mistyped policy shows up here rather than as retries that never happen on
Twilio. ``e`` (edge) and ``sni`` change nothing on this machine. For a value out of
its range, or a key Twilio does not list, Twilio documents no error: the sandbox
logs it and keeps the default.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl

import aiohttp

log = logging.getLogger(__name__)

#: Seconds between attempts: Twilio does not say how long it waits; short keeps tests fast.
RETRY_DELAY = 0.2
#: Each numeric override: lowest, highest, Twilio's default.
LIMITS = {"ct": (100, 10_000, 5_000), "rt": (100, 15_000, 15_000),
          "tt": (100, 15_000, 15_000), "rc": (0, 5, 1)}
POLICIES = frozenset({"4xx", "5xx", "ct", "rt"})
#: Overrides Twilio reads that change nothing here: the edge it sends from, TLS SNI.
INERT = frozenset({"e", "sni"})
CONNECTION_FAILURE = "11205 HTTP connection failure"
TOTAL_TIMEOUT = "11203 HTTP communication total time out triggered"
#: Whatever fails to reach the app: no connection, no answer, or a URL nobody can reach.
SEND_ERRORS = (aiohttp.ClientError, TimeoutError, ValueError)


class NotSent(Exception):
    """Twilio would not send the request at all: its overrides are invalid (11243)."""

    code = 11243

    def __init__(self, policy: str) -> None:
        self.detail = f"HTTP retry policy is invalid: rp={policy}"
        super().__init__(f"{self.code} {self.detail}")


class TotalTimeout(TimeoutError):
    """``tt`` ran out before an attempt succeeded (11203)."""

    def __str__(self) -> str:
        return TOTAL_TIMEOUT


@dataclass
class Attempt:
    """One try: its number (from 1), its timeouts, and the answer's status once it came."""

    number: int
    timeout: aiohttp.ClientTimeout
    status: int | None = None


@dataclass(frozen=True)
class Overrides:
    """The connection settings of one webhook URL (Twilio's defaults unless overridden)."""

    ct: int = LIMITS["ct"][2]
    rt: int = LIMITS["rt"][2]
    tt: int = LIMITS["tt"][2]
    rc: int = LIMITS["rc"][2]
    rp: frozenset[str] = frozenset({"ct"})
    #: The invalid ``rp`` that stops Twilio sending, or None.
    invalid: str | None = None

    async def send(self, attempt: Callable[[Attempt], Awaitable[None]]) -> Attempt:
        """Run ``attempt`` (one request: it sets ``status`` once the answer's status line
        came, and raises what aiohttp raises) until an outcome ``rp`` does not retry,
        ``rc`` retries were made, or ``tt`` ran out (``TotalTimeout``).

        Returns the last attempt; re-raises the last attempt's error; ``NotSent`` when
        the overrides stop Twilio sending at all.
        """
        if self.invalid is not None:
            raise NotSent(self.invalid)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.tt / 1000
        number = 0
        while True:
            number += 1
            current = Attempt(number, self._timeout(deadline - loop.time()))
            try:
                await attempt(current)
            except SEND_ERRORS as error:
                if is_total_timeout(error):
                    raise TotalTimeout from error
                if not self._again(failure_of(current.status, error), number, deadline):
                    raise
            else:
                if not self._again(failure_of(current.status, None), number, deadline):
                    return current
            await asyncio.sleep(RETRY_DELAY)

    def _timeout(self, seconds_left: float) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=max(seconds_left, 0.001),
                                     sock_connect=self.ct / 1000, sock_read=self.rt / 1000)

    def _again(self, failure: str | None, number: int, deadline: float) -> bool:
        """Whether Twilio tries again after this outcome, with time left for it."""
        time_left = deadline - asyncio.get_running_loop().time() > RETRY_DELAY
        return failure in self.rp and number <= self.rc and time_left


#: Twilio's defaults: what a URL without a fragment gets.
DEFAULT = Overrides()
#: One attempt within Twilio's timeouts: a request the console sends again by hand.
ONCE = Overrides(rc=0)


def failure_of(status: int | None, error: BaseException | None) -> str | None:
    """The ``rp`` class of an attempt's outcome: ``4xx``, ``5xx``, ``ct``, ``rt``, or None
    for a success or a failure no policy retries (an answer cut off part way)."""
    if error is None:
        if status is not None and 400 <= status < 600:
            return f"{status // 100}xx"
        return None
    if status is not None:
        return None  # a partial answer: "rt" retries only when nothing came back
    if isinstance(error, aiohttp.SocketTimeoutError):
        return "rt"
    if isinstance(error, aiohttp.ClientConnectionError | ValueError):
        return "ct"  # refused, reset or timed out connecting; a URL nobody can reach
    return None


def is_total_timeout(error: BaseException) -> bool:
    """aiohttp's total timeout (set to what is left of ``tt``), not a connect or read one."""
    return isinstance(error, TimeoutError) and not isinstance(error, aiohttp.ServerTimeoutError)


def describe(error: BaseException) -> str:
    """An attempt's failure as Twilio's debugger names it."""
    if isinstance(error, TotalTimeout) or is_total_timeout(error):
        return TOTAL_TIMEOUT
    return f"{CONNECTION_FAILURE}: {error!r}"


def split(url: str) -> tuple[str, Overrides]:
    """The URL Twilio requests and signs (without its fragment), and what its fragment sets."""
    target, _, fragment = url.partition("#")
    return target, parse(fragment)


def parse(fragment: str) -> Overrides:
    """The overrides a fragment (``ct=1000&rc=3&rp=5xx,ct``) sets over Twilio's defaults."""
    numbers: dict[str, int] = {}
    policy, invalid = DEFAULT.rp, None
    for key, value in parse_qsl(fragment, keep_blank_values=True):
        if key in LIMITS:
            low, high, default = LIMITS[key]
            if value.isascii() and value.isdigit() and low <= int(value) <= high:
                numbers[key] = int(value)
            else:
                log.warning("connection override %s=%r is not %d to %d: %s kept (Twilio "
                            "documents no error for it)", key, value, low, high, default)
        elif key == "rp":
            names = set(value.split(","))
            names = (names - {"all"}) | POLICIES if "all" in names else names
            if names <= POLICIES and names:
                policy = frozenset(names)
            else:
                invalid = value
        elif key not in INERT:
            log.warning("%r is not a connection override Twilio lists: ignored", key)
    return Overrides(**numbers, rp=policy, invalid=invalid)
