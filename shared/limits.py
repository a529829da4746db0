"""Rate limits against SMS pumping and toll fraud, counted in Table Storage.

A function key ships inside the mobile app, so anyone who extracts it can
send. Each outgoing request is counted against fixed UTC windows, shared by
every instance of the app through the store (see docs/storage.md):

- per caller per hour, separately for each kind (SMS, calls; other features
  add their own kind): the signed-in user, else the client's IP address
  (``client_ip``);
- per destination number per day, per destination country per hour, and per
  account per day (the budget ceiling), all kinds together.

``admit`` increments every counter that applies, each only while it is under
its limit, with optimistic concurrency (ETags) and bounded retries; when one
is full the others it already incremented are given back, so a refused
request counts for nothing. A counter that many instances hit at once (the
account's) is split into shards, each holding an exact share of the limit, so
the total admitted never exceeds the limit and writers rarely collide.

A 429 names the limit, what it counts and when its window ends; under a local
host (``AZURE_FUNCTIONS_ENVIRONMENT=Development``) it also says how to clear
the counters, which live in ``.azurite/`` and outlast restarts (``reset_all``).

When the store fails, ``RATE_LIMIT_STORE_FAILURE`` decides: ``refuse`` (the
default: 503, nothing sent, so an outage can never be used to pump) or
``allow`` (send unlimited, logged). Without a store configured the limits
are off, with a warning at start-up.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import azure.functions as func
import phonenumbers

from shared.identity import Caller
from shared.keys import digest
from shared.logs import mask
from shared.problems import Problem, rate_limited, store_unavailable
from shared.settings import Settings
from shared.store import RETRY_AFTER, Conflict, Row, Store, StoreUnavailable, store_for
from shared.turns import Turn, Turns

logger = logging.getLogger("twilio_functions.limits")

TABLE = "ratelimits"
#: The header Azure's front end appends the client's address to (see ``client_ip``).
FORWARDED_FOR = "X-Forwarded-For"
#: Reads and conditional writes one counter may take before the store counts as failing.
MAX_ATTEMPTS = 24
MAX_SHARDS = 16
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)

# Per-caller limits by kind: the setting's field in ``Settings``. A feature
# with its own kind (voice tokens) adds its entry here.
CALLER_LIMITS: dict[str, str] = {"sms": "rate_limit_sms_per_caller",
                                 "call": "rate_limit_calls_per_caller",
                                 "voice-token": "rate_limit_voice_tokens_per_caller",
                                 "media": "rate_limit_media_per_caller",
                                 "device": "rate_limit_devices_per_caller"}
#: What each limit counts, as a 429 says it (never whose: no user, address or number).
COUNTS: dict[str, str] = {"sms-per-caller": "SMS by one caller",
                          "call-per-caller": "calls by one caller",
                          "voice-token-per-caller": "Voice SDK tokens for one caller",
                          "media-per-caller": "MMS files fetched by one caller",
                          "device-per-caller": "device registrations by one caller",
                          "per-destination": "calls and SMS to one number",
                          "per-country": "calls and SMS to one country",
                          "per-account": "calls and SMS on the whole account"}
#: What a 429 adds under a local host only: on Azure the windows just roll over.
LOCAL_RESET = ("Locally, `python -m devhost --reset-limits` (or \"Reset limits\" in the "
               "sandbox console) clears every counter.")
#: Counters ``reset_all`` deletes at once.
RESET_BATCH = 100


@dataclass(frozen=True)
class Limit:
    """One counter: at most ``quota`` requests of ``scope`` per ``window``."""

    name: str  # named in the 429 and in RateLimit-Policy: never the scope itself
    scope: str  # whose requests: a user, an IP, a number, a country, the account
    quota: int
    window: timedelta

    def window_start(self, now: datetime) -> datetime:
        if self.window == DAY:
            return now.replace(hour=0, minute=0, second=0, microsecond=0)
        return now.replace(minute=0, second=0, microsecond=0)

    def window_end(self, now: datetime) -> datetime:
        return self.window_start(now) + self.window

    def reset_after(self, now: datetime) -> int:
        """Whole seconds until the window rolls over (at least 1)."""
        return max(1, int((self.window_end(now) - now).total_seconds() + 0.999))

    def shares(self) -> list[int]:
        """The quota split over shards: exact shares, a share for every few requests."""
        shards = max(1, min(MAX_SHARDS, self.quota // 8))
        base, extra = divmod(self.quota, shards)
        return [base + (1 if shard < extra else 0) for shard in range(shards)]


def caller_scope(req: func.HttpRequest, caller: Caller) -> str:
    """Whom per-caller limits count: the signed-in user, else the client's address."""
    return caller.owner if caller.signed_in else f"ip:{client_ip(req.headers)}"


def client_ip(headers: Mapping[str, str]) -> str:
    """The client's address as Azure's front end reports it: the last ``X-Forwarded-For`` entry.

    The front end appends the address it accepted the connection from to
    whatever ``X-Forwarded-For`` the client sent, so a client can add entries
    on the left but never change the last one. IPv6 clients count per /64, the
    block one subscriber gets. Without the header (a request that did not come
    through a front end), every such client shares the one ``unknown`` count.
    """
    last = headers.get(FORWARDED_FOR, "").split(",")[-1].strip()
    host = last
    if last.startswith("["):  # [v6]:port
        host = last[1:].split("]", 1)[0]
    elif last.count(":") == 1:  # v4:port
        host = last.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return "unknown"
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def limits_for(settings: Settings, kind: str, who: str, to: str | None) -> list[Limit]:
    """The limits a request of ``kind`` by ``who`` to ``to`` counts against (0: no limit)."""
    limits = [Limit(f"{kind}-per-caller", who, getattr(settings, CALLER_LIMITS[kind]), HOUR)]
    if to is not None:
        limits += [
            Limit("per-destination", to, settings.rate_limit_per_destination, DAY),
            Limit("per-country", _country(to), settings.rate_limit_per_country, HOUR),
            Limit("per-account", settings.account_sid, settings.rate_limit_per_account, DAY),
        ]
    return [limit for limit in limits if limit.quota > 0]


async def admit(settings: Settings, kind: str, who: str, to: str | None = None, *,
                now: datetime | None = None) -> None:
    """Count one request against its limits, or refuse it: 429 ``rate-limited``, or 503.

    Call it after the request is validated and just before Twilio is called.
    """
    store = store_for(settings)
    limits = limits_for(settings, kind, who, to)
    if store is None or not limits:
        return
    now = now or datetime.now(UTC)
    outcomes = await asyncio.gather(*(_take(store, limit, now) for limit in limits),
                                    return_exceptions=True)
    taken = [(limit, shard) for limit, shard in zip(limits, outcomes, strict=True)
             if isinstance(shard, int)]
    if len(taken) == len(limits):
        return
    await asyncio.gather(*(_give_back(store, limit, shard, now) for limit, shard in taken),
                         return_exceptions=True)
    full = next((limit for limit, outcome in zip(limits, outcomes, strict=True)
                 if outcome is None), None)
    if full is not None:
        raise _tripped(full, kind, who, to, now, local=settings.development)
    failure = next(o for o in outcomes if isinstance(o, BaseException))
    if not isinstance(failure, StoreUnavailable):
        raise failure
    if settings.rate_limit_store_failure == "allow":
        logger.error("rate_limit=unchecked kind=%s cause=%s: sent without counting "
                     "(RATE_LIMIT_STORE_FAILURE=allow)", kind, _word(failure))
        return
    logger.error("rate_limit=unchecked kind=%s cause=%s: refused (RATE_LIMIT_STORE_FAILURE="
                 "refuse)", kind, _word(failure))
    raise store_unavailable(RETRY_AFTER, "the rate-limit store cannot be reached, so nothing "
                            "was sent; retry later")


#: This instance's turns at the counter shards (see ``shared.turns``).
_shards: Turns[Turn] = Turns(Turn)


async def _take(store: Store, limit: Limit, now: datetime) -> int | None:
    """Take one unit of ``limit``: the shard it came from, or None when every shard is full."""
    shares = limit.shares()
    attempts = 0
    for shard in random.sample(range(len(shares)), len(shares)):
        partition, key = _partition(limit, shard), _row_key(limit, now)
        local = _shards.at(store, partition, key)
        async with local.taken():
            row, read = local.row, False
            local.row = None  # until the store agrees again
            while True:
                attempts += 1
                if attempts > MAX_ATTEMPTS:
                    raise StoreUnavailable(f"{MAX_ATTEMPTS} conflicting writes on {limit.name}")
                if row is None or (not read and _count(row) >= shares[shard]):
                    row, read = await store.get(TABLE, partition, key), True
                count = _count(row)
                if count >= shares[shard]:
                    local.row = row
                    break  # this shard is full: try the next
                try:
                    if row is None:
                        row = _counter(limit, shard, now, 1)
                        if not await store.insert(TABLE, row):
                            row, read = None, False  # created meanwhile: read it
                            continue
                    else:
                        row.fields["Count"] = count + 1
                        await store.replace(TABLE, row)
                except Conflict:
                    row, read = None, False  # another instance wrote it: read it again
                    await asyncio.sleep(random.uniform(0, 0.002 * min(attempts, 8)))  # noqa: S311
                    continue
                local.row = row
                return shard
    return None


async def _give_back(store: Store, limit: Limit, shard: int, now: datetime) -> None:
    """Undo ``_take`` for a request another limit refused (bounded; a failure over-counts)."""
    partition, key = _partition(limit, shard), _row_key(limit, now)
    local = _shards.at(store, partition, key)
    async with local.taken():
        local.row = None
        for _ in range(MAX_ATTEMPTS):
            row = await store.get(TABLE, partition, key)
            if row is None or _count(row) <= 0:
                return
            row.fields["Count"] -= 1
            try:
                await store.replace(TABLE, row)
            except Conflict:
                await asyncio.sleep(random.uniform(0, 0.005))  # noqa: S311
                continue
            local.row = row
            return


def _count(row: Row | None) -> int:
    return int(row.fields.get("Count", 0)) if row is not None else 0


async def reset_all(store: Store) -> int:
    """Delete every counter, and nothing else the store keeps: how many there were.

    For local development (``python -m devhost --reset-limits``), where the
    counters outlast restarts in ``.azurite/``; on Azure, windows roll over on
    their own. A counter written meanwhile is read again and deleted too, and
    an instance that remembers a deleted counter finds out by its ETag.
    """
    cleared = stalled = 0
    while rows := await store.rows(TABLE, limit=RESET_BATCH):
        outcomes = await asyncio.gather(*(store.delete(TABLE, row) for row in rows),
                                        return_exceptions=True)
        failure = next((o for o in outcomes if isinstance(o, BaseException)
                        and not isinstance(o, Conflict)), None)
        if failure is not None:
            raise failure
        deleted = sum(o is None for o in outcomes)
        cleared += deleted
        stalled = 0 if deleted else stalled + 1
        if stalled >= MAX_ATTEMPTS:
            raise StoreUnavailable(f"{MAX_ATTEMPTS} rounds of conflicting writes on {TABLE}")
    return cleared


def _tripped(limit: Limit, kind: str, who: str, to: str | None, now: datetime, *,
             local: bool) -> Problem:
    """The 429, and the one log line that makes pumping visible (masked, never an address)."""
    retry_after = limit.reset_after(now)
    logger.warning("rate_limit=tripped limit=%s kind=%s quota=%d window=%ds caller=%s to=%s "
                   "retry_after=%d", limit.name, kind, limit.quota,
                   int(limit.window.total_seconds()), digest(who)[:12],
                   mask(to) if to else "-", retry_after)
    counts = COUNTS.get(limit.name, "requests")
    per = "hour" if limit.window == HOUR else "day (UTC)"
    detail = (f"the {limit.name} limit is reached: {limit.quota} {counts} per {per}. It resets "
              f"in {retry_after} s, at {limit.window_end(now):%Y-%m-%dT%H:%M:%SZ}.")
    return rate_limited(limit.name, limit.quota, int(limit.window.total_seconds()), retry_after,
                        f"{detail} {LOCAL_RESET}" if local else detail)


def _country(number: str) -> str:
    """The destination's region (``US``, ``JM``; ``001`` for non-geographic numbers)."""
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(number, None)) or "ZZ"
    except phonenumbers.NumberParseException:
        return "ZZ"


def _partition(limit: Limit, shard: int) -> str:
    """One partition per counter shard: its load never lands on another counter's.

    The scope is hashed: table keys cannot hold every character a user ID may,
    and the table need not list numbers or addresses in clear.
    """
    return f"{limit.name}-{digest(limit.scope)}-{shard}"


def _row_key(limit: Limit, now: datetime) -> str:
    return limit.window_start(now).strftime("%Y%m%d%H" if limit.window == HOUR else "%Y%m%d")


def _counter(limit: Limit, shard: int, now: datetime, count: int) -> Row:
    start = limit.window_start(now)
    return Row(_partition(limit, shard), _row_key(limit, now),
               {"Count": count, "Limit": limit.name, "WindowEnd": start + limit.window})


def _word(error: BaseException) -> str:
    return str(error).replace(" ", "_")
