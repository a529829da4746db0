"""Store calls per send and per callback, counted (not timed) in this process.

The repository's ``send_sms`` and ``status_callback`` run here on the benchmark's
store and sandbox (``bench.in_process``), with every method of the loop's store
wrapped to count its calls, each tagged by whether Twilio had answered the send: a
count holds on any machine, where timings do not. Each send goes to a thread this
instance has already written once (the first send to a thread in an instance reads
its summary first: counted apart), then Twilio's reports for it, ``sent`` and
``delivered``, reach the same instance, as they do while one instance serves.
"""

from __future__ import annotations

import asyncio
import importlib
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import azure.functions as func
from twilio.request_validator import RequestValidator

from bench.in_process import InProcessApp

SENDS = 20
#: Twilio's reports per message, as a message delivered gets them.
REPORTS = ("sent", "delivered")
#: The store's methods the app calls; each is one request to Table Storage (a query
#: page is one too: the app's reads here are one page each).
METHODS = ("get", "insert", "replace", "delete", "upsert", "rows", "rows_keyed", "transact")

_answered: ContextVar[bool] = ContextVar("answered", default=False)


@dataclass(frozen=True)
class Counts:
    """Store calls per send before and after Twilio answered, of the first send to a
    thread in the instance, and per callback; transactions among those after."""

    before: float
    after: float
    first_after: int
    callback: float
    by_method: Mapping[str, float]  # per send, every phase

    @property
    def per_send(self) -> float:
        return self.before + self.after


async def count(env: Mapping[str, str], keyed: bool = False, to: str | None = None) -> Counts:
    """``SENDS`` sends to ``to`` (after one to open the thread; by default a number picked
    at random, a thread of its own) and their callbacks, counted."""
    async with InProcessApp(env, keyed=keyed) as app:
        from shared.identity import ANONYMOUS
        from shared.settings import app_settings
        from shared.store import store_for
        from shared.threads import owner_key

        sending = importlib.import_module("send_sms")
        reporting = importlib.import_module("status_callback")
        store = store_for(app_settings())
        assert store is not None, "the benchmark's app has a store"
        seen: Counter[tuple[str, str]] = Counter()
        _wrap(store, seen)
        send_message = sending.send_message

        async def answered(*args: Any, **kwargs: Any) -> Any:
            sent = await send_message(*args, **kwargs)
            _answered.set(True)  # this send's own context: its task's
            return sent

        sending.send_message = answered
        try:
            to = to or f"+1415555{random.randrange(10_000):04d}"
            first = await _counted(seen, lambda: app.send_sms(to, "the first"))
            sids = []
            for n in range(SENDS):
                sids.append(await _task(app.send_sms(to, f"send {n}")))
            sends = _phases(seen)
            seen.clear()
            url = f"http://localhost/api/status_callback?owner={owner_key(ANONYMOUS.owner)}"
            for sid in sids:
                for status in REPORTS:
                    await _task(_report(reporting.main, url, env, sid, to, status))
            callbacks = sum(seen.values())
        finally:
            sending.send_message = send_message
    return Counts(before=sends["before"] / SENDS, after=sends["after"] / SENDS,
                  first_after=first["after"], callback=callbacks / (SENDS * len(REPORTS)),
                  by_method={name: n / SENDS for name, n in sends.items()
                             if name not in ("before", "after")})


def _wrap(store: Any, seen: Counter[tuple[str, str]]) -> None:
    for name in METHODS:
        method = getattr(store, name)

        async def call(*args: Any, _method: Any = method, _name: str = name,
                       **kwargs: Any) -> Any:
            seen[("after" if _answered.get() else "before", _name)] += 1
            return await _method(*args, **kwargs)
        setattr(store, name, call)


def _phases(seen: Counter[tuple[str, str]]) -> Counter[str]:
    totals: Counter[str] = Counter()
    for (phase, name), n in seen.items():
        totals[phase] += n
        totals[name] += n
    return totals


async def _counted(seen: Counter[tuple[str, str]],
                   work: Callable[[], Awaitable[object]]) -> Counter[str]:
    """``work``'s calls alone, then forgotten (the first send to the thread)."""
    seen.clear()
    await _task(work())
    counted = _phases(seen)
    seen.clear()
    return counted


async def _task[T](work: Awaitable[T]) -> T:
    """In a task of its own, as each invocation is: its context (``_answered``) is its own."""
    async def run() -> T:
        return await work
    return await asyncio.create_task(run())


async def _report(main: Callable[[func.HttpRequest], Awaitable[func.HttpResponse]], url: str,
                  env: Mapping[str, str], sid: str, to: str, status: str) -> None:
    """One of Twilio's status callbacks for ``sid``, signed as Twilio signs it."""
    params = {"AccountSid": env["TWILIO_ACCOUNT_SID"], "ApiVersion": "2010-04-01",
              "MessageSid": sid, "SmsSid": sid, "MessageStatus": status, "SmsStatus": status,
              "To": to}
    signature = RequestValidator(env["TWILIO_AUTH_TOKEN"]).compute_signature(url, params)
    req = func.HttpRequest("POST", url, params={"owner": url.rsplit("=", 1)[1]},
                           headers={"X-Twilio-Signature": signature,
                                    "Content-Type": "application/x-www-form-urlencoded"},
                           body=urlencode(params).encode())
    answer = await main(req)
    if answer.status_code != 204:
        raise RuntimeError(f"status_callback in process answered {answer.status_code}: "
                           f"{answer.get_body()[:300]!r}")
