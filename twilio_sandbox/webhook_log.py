"""Every request the sandbox sends to the app, with the app's answer, kept for the console.

The sandbox sends webhooks (TwiML fetches, status callbacks, inbound messages
and calls) and, when a developer drives the app from the console, the mobile
app's requests, all through one ``aiohttp`` session. This log is that session's
trace: it sees exactly what went on the wire (URL, signature, parameters) and
what came back, whichever code sent it, so nothing added later goes unseen. A
logged request can be sent again, byte for byte.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import yarl

from .bodies import decode, discard, read_at_most
from .events import Tracked, stamp
from .overrides import ONCE, SEND_ERRORS, Attempt, NotSent, Overrides, TotalTimeout

#: Bytes of each body the log keeps for display (a TwiML answer is far smaller).
MAX_SHOWN = 8 * 1024
#: Bytes of a sent body kept so that it can be sent again: of 1,000 records, none holds
#: more (Twilio's webhooks are a few kB; a larger request is shown but not resendable).
MAX_RESENT = 64 * 1024
#: Bytes of an answer read at all: as much as Twilio reads of TwiML (64 kB, error 11750,
#: https://www.twilio.com/docs/api/errors/11750); the rest is left unread.
MAX_ANSWER = 64 * 1024
#: Headers whose values are credentials: the log shows that they were sent, not what.
HIDDEN_HEADERS = frozenset({"authorization", "x-functions-key", "cookie"})
#: Headers worth showing beside the URL (the rest are aiohttp's own).
SHOWN_HEADERS = ("X-Twilio-Signature", "I-Twilio-Idempotency-Token", "Content-Type",
                 "User-Agent", "x-functions-key", "Authorization")


@dataclass(frozen=True)
class Sent:
    """What went on the wire (up to MAX_RESENT bytes of body), kept so that it can be
    sent again."""

    method: str
    url: yarl.URL
    headers: dict[str, str]
    body: bytes


class WebhookRecord(Tracked):
    """One logged request (a dict the console shows) and, privately, its bytes."""

    sent: Sent | None = None
    #: The answer as text, up to MAX_ANSWER bytes (the record shows MAX_SHOWN of it).
    answer_text: str = ""


def kind_of(params: dict[str, str]) -> str:
    """What a webhook is, from Twilio's parameters (status callbacks carry a status field)."""
    if "MessageStatus" in params or "SequenceNumber" in params or "CallbackSource" in params:
        return "status-callback"
    if "CallSid" in params:
        return "twiml"
    if "MessageSid" in params or "SmsSid" in params:
        return "inbound-sms"
    return "webhook"


def _text(data: bytes) -> tuple[str, bool]:
    """Up to MAX_SHOWN bytes as text, and whether that is all of it."""
    return data[:MAX_SHOWN].decode("utf-8", "replace"), len(data) <= MAX_SHOWN


async def read_answer(answer: aiohttp.ClientResponse, limit: int,
                      context: dict[str, Any]) -> tuple[bytes, bool]:
    """Up to ``limit`` bytes of ``answer`` and whether that is all (the rest left unread),
    shown on the logged request that ``context``, its ``trace_request_ctx``, names."""
    data, whole = await read_at_most(answer.content, limit)
    record = context.get("record")
    if isinstance(record, WebhookRecord) and record["answer"] is not None:
        shown, complete = _text(data)
        record["answer"] = {**record["answer"], "body": shown, "complete": complete and whole}
    return data, whole


async def show_answer(answer: aiohttp.ClientResponse, context: dict[str, Any]) -> None:
    """Read an answer nobody uses to its end, chunk by chunk (the connection is then
    reused), keeping only what the log shows of it."""
    await read_answer(answer, MAX_SHOWN, context)
    await discard(answer.content)


class WebhookLog:
    """The last ``limit`` requests sent, oldest first; ``on_change`` hears of each update."""

    def __init__(self, limit: int, on_change: Callable[[Tracked], None]) -> None:
        self.limit = limit
        self.records: list[WebhookRecord] = []
        self._on_change = on_change
        self._next_id = 1

    def clear(self) -> None:
        self.records.clear()

    def find(self, record_id: int) -> WebhookRecord | None:
        return next((r for r in self.records if r["id"] == record_id), None)

    def trace_config(self) -> aiohttp.TraceConfig:
        """Hooks for the sandbox's client session; ``trace_request_ctx`` may name the kind."""
        config = aiohttp.TraceConfig()
        config.on_request_start.append(self._started)
        config.on_request_chunk_sent.append(self._chunk_sent)
        config.on_request_end.append(self._answered)
        config.on_request_exception.append(self._failed)
        return config

    # --- trace hooks -------------------------------------------------------------

    async def _started(self, _session: Any, ctx: SimpleNamespace, params: Any) -> None:
        given = ctx.trace_request_ctx if isinstance(ctx.trace_request_ctx, dict) else {}
        given["record"] = record = self._new(
            given.get("kind"), given.get("sid"), params.method, params.url,
            resent_from=given.get("resent_from"))
        ctx.record, ctx.body, ctx.started = record, bytearray(), time.perf_counter()
        ctx.body_size = 0

    def _new(self, kind: str | None, sid: str | None, method: str, url: str | yarl.URL,
             resent_from: int | None = None, error: str | None = None) -> WebhookRecord:
        """Log a request (its answer comes later), or one never sent with why."""
        record = WebhookRecord({
            "id": self._next_id, "at": stamp(), "kind": kind, "sid": sid,
            "resent_from": resent_from, "method": method, "url": str(url), "headers": {},
            "params": [], "body": None, "answer": None, "ms": None, "error": error,
            "resendable": None,  # known once the body went out (MAX_RESENT)
        }, self._on_change)
        self._next_id += 1
        self.records.append(record)
        if len(self.records) > self.limit:
            del self.records[: len(self.records) - self.limit]
        record.changed()
        return record

    async def _chunk_sent(self, _session: Any, ctx: SimpleNamespace, params: Any) -> None:
        ctx.body_size += len(params.chunk)
        if len(ctx.body) <= MAX_RESENT:  # one byte over says there was more
            ctx.body.extend(params.chunk[: MAX_RESENT + 1 - len(ctx.body)])

    async def _answered(self, _session: Any, ctx: SimpleNamespace, params: Any) -> None:
        response: aiohttp.ClientResponse = params.response
        self._finish_request(ctx, params)
        ctx.record.update(
            ms=round((time.perf_counter() - ctx.started) * 1000, 1),
            answer={"status": response.status, "reason": response.reason,
                    "content_type": response.headers.get("Content-Type"),
                    "body": None, "complete": True},  # read_answer fills it in
        )

    async def _failed(self, _session: Any, ctx: SimpleNamespace, params: Any) -> None:
        self._finish_request(ctx, params)
        ctx.record.update(ms=round((time.perf_counter() - ctx.started) * 1000, 1),
                          error=f"{type(params.exception).__name__}: {params.exception}")

    def _finish_request(self, ctx: SimpleNamespace, params: Any) -> None:
        """Fill in what was sent (known once the body went out)."""
        record: WebhookRecord = ctx.record
        headers = dict(params.headers)
        body = bytes(ctx.body)
        kept = ctx.body_size <= MAX_RESENT
        record.sent = Sent(params.method, params.url, headers, body) if kept else None
        form = headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded")
        pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True) if form else []
        pairs += parse_qsl(params.url.raw_query_string, keep_blank_values=True)
        shown = {name: ("•••" if name.lower() in HIDDEN_HEADERS else value)
                 for name in SHOWN_HEADERS if (value := headers.get(name)) is not None}
        text, complete = _text(body)
        record.update(
            kind=record["kind"] or kind_of(dict(pairs)),
            sid=record["sid"] or dict(pairs).get("CallSid") or dict(pairs).get("MessageSid"),
            headers=shown, params=[list(pair) for pair in pairs],
            body=None if form else text, body_complete=complete, resendable=kept,
        )

    # --- sending -----------------------------------------------------------------

    async def send(self, session: aiohttp.ClientSession, method: str, url: str | yarl.URL, *,
                   headers: dict[str, str], data: Any = None, kind: str,
                   sid: str | None = None, resent_from: int | None = None,
                   overrides: Overrides = ONCE) -> WebhookRecord:
        """Send a request the sandbox makes on its own, retried as ``overrides`` say (a
        Twilio webhook's are its URL's); each attempt is a record, the last one is returned
        with the answer or error."""
        context: dict[str, Any] = {}

        async def attempt(current: Attempt) -> None:
            context.clear()
            context.update(kind=kind, sid=sid, resent_from=resent_from)
            async with session.request(method, url, headers=headers, data=data,
                                       trace_request_ctx=context,
                                       timeout=current.timeout) as answer:
                current.status = answer.status
                text, _ = await read_answer(answer, MAX_ANSWER, context)
                context["record"].answer_text = decode(text, answer.charset)

        try:
            await overrides.send(attempt)
        except NotSent as refused:  # as Twilio's debugger would, without a request to show
            return self._new(kind, sid, method, url, error=str(refused))
        except SEND_ERRORS as exc:
            record = context.get("record")
            if record is None:  # refused before it was sent: nothing on the wire to show
                raise
            if isinstance(exc, TotalTimeout):  # tt ran out, whatever the attempt saw
                record["error"] = str(exc)
            elif record["error"] is None:  # timed out reading the answer
                record["error"] = f"{type(exc).__name__}: {exc}"
        return context["record"]

    async def resend(self, session: aiohttp.ClientSession, record: WebhookRecord) -> WebhookRecord:
        """Send a logged request again, exactly as it went; the new record logs the answer."""
        sent = record.sent
        if sent is None:
            raise ValueError("that request never went out")
        headers = {name: value for name, value in sent.headers.items()
                   if name.lower() not in ("host", "content-length", "transfer-encoding")}
        return await self.send(session, sent.method, sent.url, headers=headers,
                               data=sent.body or None, kind=record["kind"], sid=record["sid"],
                               resent_from=record["id"])
