"""Opt-outs: a recipient who texted STOP gets nothing more from that line until START.

Twilio's standard keywords (``shared.sms_keywords``) decide. An opt-out
holds for the line it was sent to: the Twilio number, and the Messaging
Service that number belongs to when Twilio names one. Numbers come here in
their canonical form (``shared.phone``): a STOP in one spelling of a number
stops a send in any other. ``send_sms`` refuses
an opted-out recipient before Twilio is called, and Twilio's own refusal
(21610, the recipient unsubscribed) is recorded too, so an opt-out the app
missed (given while the app was down, or before it existed) is learnt from
the first refused send.

Who answers the keywords: Twilio. It replies to STOP, START and HELP itself
(the default texts, or those of the Messaging Service's Advanced Opt-Out), so
the app answers them with an empty ``<Response/>``: the user never gets two
replies. See docs/api.md, "Two-way SMS".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable
from datetime import datetime

from shared.logs import mask
from shared.problems import RECIPIENT_OPTED_OUT, Problem, recipient_opted_out
from shared.settings import Settings
from shared.store import Conflict, Row, Store, StoreUnavailable, store_for

logger = logging.getLogger("twilio_functions.opt_outs")

TABLE = "optouts"


async def record(store: Store, lines: Iterable[str], number: str, opted_out: bool,
                 at: datetime) -> None:
    """Remember that ``number`` opted out of (or back into) each of ``lines``."""
    for line in lines:
        if opted_out:
            await store.upsert(TABLE, Row(line, number, {"OptedOut": True, "At": at}))
        elif (row := await store.get(TABLE, line, number)) is not None:
            with contextlib.suppress(Conflict):  # a STOP written meanwhile is the newer word
                await store.delete(TABLE, row)


async def opted_out(store: Store, pairs: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which (line, number) of ``pairs`` opted out: one filtered query per distinct line
    (``Store.rows_keyed``), made at once."""
    by_line: dict[str, set[str]] = {}
    for line, number in pairs:
        by_line.setdefault(line, set()).add(number)
    found = await asyncio.gather(*(store.rows_keyed(TABLE, line, numbers)
                                   for line, numbers in by_line.items()))
    return {(row.partition, row.key) for rows in found for row in rows}


async def refuse_opted_out(settings: Settings, line: str, number: str) -> None:
    """403 ``recipient-opted-out`` if ``number`` opted out of ``line``, before Twilio is called.

    Without a store (or with the store down) the message goes to Twilio,
    which keeps its own opt-out list and refuses with 21610: the same 403.
    """
    store = store_for(settings)
    if store is None:
        return
    try:
        row = await store.get(TABLE, line, number)
    except StoreUnavailable as error:
        logger.warning("store=unavailable to=%s cause=%s: opt-outs left to Twilio",
                       mask(number), str(error).replace(" ", "_"))
        return
    if row is not None:
        raise recipient_opted_out("to")


@contextlib.asynccontextmanager
async def learning_opt_outs(settings: Settings, line: str, number: str,
                            now: datetime) -> AsyncIterator[None]:
    """Record the opt-out Twilio reports by refusing a send (21610), then let the 403 go on."""
    try:
        yield
    except Problem as problem:
        store = store_for(settings)
        if problem.type == RECIPIENT_OPTED_OUT and store is not None:
            try:
                await record(store, (line,), number, True, now)
            except StoreUnavailable as error:
                logger.error("store=unavailable to=%s cause=%s: Twilio's opt-out not recorded",
                             mask(number), str(error).replace(" ", "_"))
        raise
