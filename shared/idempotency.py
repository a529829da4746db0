"""Safe retries: the ``Idempotency-Key`` request header, kept in Table Storage.

Follows the IETF httpapi draft "The Idempotency-Key HTTP Header Field" and
Stripe's practice. The first request with a key reserves it atomically
(insert-if-absent) with a fingerprint of the validated request, then the
story goes on, and its answer is stored once Twilio was called. A retry with
the same key and request gets the stored answer again, with
``Idempotent-Replayed: true``, and nothing is sent twice; with another request
422; while the first still runs 409.

A request refused before Twilio is called (our own 400/403/413/415/429) is not
stored: the reservation is released, so the client can fix and retry with the
same key. So is a Twilio failure that proves nothing was sent (the request
never left, or Twilio's 429). Every other outcome, 502/504 "may have been
sent" included, is stored and replayed. A reservation whose instance died
before storing an answer stays 409 until the key expires: resending could
send twice.

Keys are scoped to the caller: the signed-in user, else the function key's
scope. Azure does not tell the app which key was used, so that scope is the
whole app: every anonymous holder of its keys shares one key space (clients
must use random keys, such as UUIDs). Keys are kept ``KEEP`` (24 hours).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.functions as func

from shared.identity import Caller
from shared.keys import digest
from shared.logs import log_outcome
from shared.problems import (
    Problem,
    internal_error,
    invalid_request,
    misconfigured,
    store_unavailable,
)
from shared.request_body import Payload
from shared.responses import Answered
from shared.settings import Settings
from shared.store import (
    RETRY_AFTER,
    Conflict,
    Row,
    Store,
    StoreUnavailable,
    store_for,
    utc,
)
from shared.twilio_errors import nothing_sent

logger = logging.getLogger("twilio_functions.idempotency")

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
TABLE = "idempotency"
ROW_KEY = "key"
#: How long a key is kept after its first request (the draft's expiry policy).
KEEP = timedelta(hours=24)
#: Beyond ``TWILIO_TIMEOUT_SECONDS``, how long a first request may take before its
#: reservation counts as abandoned (the store's calls, the host's own limits).
MARGIN = timedelta(seconds=30)
MAX_ATTEMPTS = 5
# 1-255 printable ASCII characters (Stripe's limit), optionally as a Structured
# Field string ("..."), as the draft writes it.
_KEY = re.compile(r"[\x20-\x7e]{1,255}")


def idempotency_key(req: func.HttpRequest) -> str | None:
    """The request's ``Idempotency-Key``, or None; 400 if it is not 1-255 printable ASCII."""
    raw = req.headers.get(HEADER)
    if raw is None:
        return None
    key = raw.strip()
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    if not _KEY.fullmatch(key):
        raise invalid_request(f"the {HEADER} header must be 1 to 255 printable ASCII characters")
    return key


@dataclass
class Attempt:
    """The first request with a key (or a request without one: ``row`` None)."""

    function: str
    store: Store | None = None
    row: Row | None = None
    kept: bool = False

    async def keep(self, response: func.HttpResponse) -> func.HttpResponse:
        """Store the answer for the key's retries; the client gets it whatever happens here."""
        if self.store is None or self.row is None:
            return response
        self.kept = True
        self.row.fields.update(_answer(response))
        try:
            await self.store.replace(TABLE, self.row)
        except (StoreUnavailable, Conflict) as error:
            # Retries get 409 until the key expires; the SID is in this line and the 201's.
            logger.error("function=%s idempotency=unkept sid=%s cause=%s", self.function,
                         _sid(response) or "-", str(error).replace(" ", "_"))
        return response

    async def release(self) -> None:
        """Forget the reservation: nothing was sent, so the key may be used again."""
        if self.store is None or self.row is None:
            return
        try:
            await self.store.delete(TABLE, self.row)
        except (StoreUnavailable, Conflict) as error:
            logger.error("function=%s idempotency=unreleased cause=%s: the key answers 409 "
                         "until it expires", self.function, str(error).replace(" ", "_"))


@contextlib.asynccontextmanager
async def first_attempt(settings: Settings, caller: Caller, key: str | None, function: str,
                        payload: Payload, *, now: datetime | None = None,
                        ) -> AsyncIterator[Attempt]:
    """Run the rest of the story once per key: a retry is answered here (``Answered``).

    ``payload`` holds the request's fields, once validated: their fingerprint
    tells a retry from another request under the same key. (Not the request the
    app builds from them: its callback URLs follow the host the request reached.)
    """
    if key is None:
        yield Attempt(function)
        return
    store = store_for(settings)
    if store is None:
        raise misconfigured("STATE_STORAGE", "(or AzureWebJobsStorage) is required for "
                            f"{HEADER}")
    fingerprint = _fingerprint(function, payload)
    attempt = await _reserve(store, settings, caller, key, function, fingerprint,
                             now or datetime.now(UTC))
    try:
        yield attempt
    except Problem as problem:
        if problem.type.rsplit(":", 1)[-1].startswith("twilio-") and not nothing_sent(problem):
            await attempt.keep(problem.to_response())  # Twilio was called: a retry replays it
        else:
            await attempt.release()
        raise
    except Exception:
        if not attempt.kept:
            await attempt.keep(internal_error().to_response())
        raise


async def _reserve(store: Store, settings: Settings, caller: Caller, key: str, function: str,
                   fingerprint: str, now: datetime) -> Attempt:
    partition = digest(f"{caller.owner}\n{key}", 64)
    fields = {"Function": function, "Fingerprint": fingerprint, "State": "running",
              "Started": now, "Expires": now + KEEP}
    try:
        for _ in range(MAX_ATTEMPTS):
            row = Row(partition, ROW_KEY, dict(fields))
            if await store.insert(TABLE, row):
                return Attempt(function, store, row)
            existing = await store.get(TABLE, partition, ROW_KEY)
            if existing is None:
                continue  # released meanwhile: reserve again
            if utc(existing.fields["Expires"]) <= now:
                existing.fields = dict(fields)  # expired: take it over, if nobody else did
                try:
                    await store.replace(TABLE, existing)
                except Conflict:
                    continue
                return Attempt(function, store, existing)
            raise _answer_for(existing, settings, function, fingerprint, now)
    except StoreUnavailable as error:
        logger.error("function=%s idempotency=unchecked cause=%s: refused", function,
                     str(error).replace(" ", "_"))
        raise store_unavailable(RETRY_AFTER, f"the {HEADER} store cannot be reached, so "
                                "nothing was sent; retry later with the same key") from None
    raise store_unavailable(RETRY_AFTER, f"the {HEADER} is contended; retry later")


def _answer_for(row: Row, settings: Settings, function: str, fingerprint: str,
                now: datetime) -> Exception:
    """What a request under a key already in use gets: replay, 422 or 409."""
    fields = row.fields
    if fields["Function"] != function or fields["Fingerprint"] != fingerprint:
        return Problem(422, "idempotency-key-reused", f"this {HEADER} was used for another "
                       "request; use a new key for a new request",
                       title="Idempotency-Key reused")
    if fields["State"] == "done":
        return Answered(_replay(function, fields))
    started, expires = utc(fields["Started"]), utc(fields["Expires"])
    if now - started <= timedelta(seconds=settings.timeout_seconds) + MARGIN:
        return Problem(409, "idempotency-key-in-progress", f"a request with this {HEADER} is "
                       "still in progress; retry after the given delay",
                       title="Idempotency-Key in progress", headers={"Retry-After": "1"})
    return Problem(
        409, "idempotency-key-in-progress", f"the first request with this {HEADER} never "
        "finished: the message or call may or may not have been sent, and it is not sent "
        f"again under this key, which expires at {expires.isoformat(timespec='seconds')}",
        title="Idempotency-Key in progress",
        headers={"Retry-After": str(max(1, int((expires - now).total_seconds())))})


def _answer(response: func.HttpResponse) -> dict[str, Any]:
    headers = {name: value for name, value in response.headers.items()
               if name.lower() != "content-type"}
    return {"State": "done", "Status": response.status_code,
            "Body": response.get_body().decode(), "MimeType": response.mimetype,
            "Headers": json.dumps(headers)}


def _replay(function: str, fields: dict[str, Any]) -> func.HttpResponse:
    body, status = fields["Body"], fields["Status"]
    log_outcome(function, status, sid=_sid_of(body), outcome="replayed")
    return func.HttpResponse(body, status_code=status, mimetype=fields["MimeType"],
                             headers={**json.loads(fields["Headers"]), REPLAYED: "true"})


def _fingerprint(function: str, payload: Payload) -> str:
    return hashlib.sha256(f"{function}\n{payload.canonical()}".encode()).hexdigest()


def _sid(response: func.HttpResponse) -> str | None:
    return _sid_of(response.get_body().decode())


def _sid_of(body: str) -> str | None:
    try:
        sid = json.loads(body).get("sid")
    except (ValueError, AttributeError):
        return None
    return sid if isinstance(sid, str) else None
