"""An SMS that reaches the app's Twilio number: read, remembered, and answered.

Twilio posts it to ``twiml`` (the number's messaging webhook) once
``read_webhook`` has proven it Twilio's, for this account. It is then
stored in the conversation it continues (``shared.conversations``; from a
number its owner blocked: stored, not counted unread), its
opt-out keyword applied (``shared.opt_outs``), and answered: nothing to a
keyword (Twilio itself replies to STOP, START and HELP), ``SMS_REPLY_MESSAGE``
to anything else when it is set.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from shared import conversations, opt_outs
from shared.conversations import ADDRESS, sms
from shared.delivery_status import is_sid
from shared.phone import canonical_address
from shared.problems import invalid_field, webhook_refused
from shared.settings import Settings
from shared.sms_keywords import Keyword, keyword_of
from shared.store import StoreUnavailable, store_for
from shared.threads import Item

logger = logging.getLogger("twilio_functions.incoming_sms")

_SERVICE = re.compile(r"MG[0-9a-f]{32}")
_MAX_MEDIA = 10


@dataclass(frozen=True)
class IncomingSms:
    """One incoming message, as far as the app keeps it."""

    message: Item
    service: str | None
    keyword: Keyword | None

    @property
    def lines(self) -> tuple[str, ...]:
        """What the sender wrote to: the number, and its Messaging Service if Twilio names one."""
        return (self.message.line, *((self.service,) if self.service else ()))


def read_incoming(params: Mapping[str, str], received: datetime) -> IncomingSms:
    """The message in Twilio's incoming-message webhook; 400 (403 without an account) if not one."""
    if "AccountSid" not in params:
        raise webhook_refused("an incoming message names its Twilio account",
                              field="AccountSid", cause="no AccountSid")
    sid = params.get("MessageSid") or params.get("SmsSid")
    if not is_sid(sid) or sid is None or sid.startswith("CA"):
        raise invalid_field("MessageSid", "must be a Twilio message SID")
    sender, to = params.get("From", ""), params.get("To", "")
    for name, value in (("From", sender), ("To", to)):
        if not ADDRESS.fullmatch(value):
            raise invalid_field(name, "must be a phone number (E.164) or a short code")
    # After the signature (read_webhook checked it over the parameters as sent): from
    # here on, one spelling per number, the one sends, opt-outs and threads use.
    sender, to = canonical_address(sender), canonical_address(to)
    service = params.get("MessagingServiceSid") or None
    if service is not None and not _SERVICE.fullmatch(service):
        raise invalid_field("MessagingServiceSid", "must be a Messaging Service SID")
    body = params.get("Body", "")
    media = tuple(params[f"MediaUrl{index}"] for index in range(_MAX_MEDIA)
                  if f"MediaUrl{index}" in params)
    message = sms(sid, "incoming", remote=sender, line=to, body=body, media_urls=media,
                  at=received)
    return IncomingSms(message, service, keyword_of(body, params.get("OptOutType")))


async def receive(settings: Settings, incoming: IncomingSms) -> str:
    """Store the message and apply its keyword; the outcome for the log line.

    Never raises for the store: Twilio does not retry a messaging webhook, so
    a failure is logged with the message's SID (Twilio keeps the message, and
    its own opt-out list) and the sender still gets the usual answer.
    """
    store = store_for(settings)
    if store is None:
        return "untracked"
    message = incoming.message
    try:
        if incoming.keyword in ("opt-out", "opt-in"):
            await opt_outs.record(store, incoming.lines, message.remote,
                                  incoming.keyword == "opt-out", message.at)
        return await conversations.record_incoming(store, settings, message, incoming.service)
    except StoreUnavailable as error:
        logger.error("store=unavailable sid=%s cause=%s: the incoming message was not stored",
                     message.sid, str(error).replace(" ", "_"))
        return "unstored"


def auto_reply(settings: Settings, incoming: IncomingSms) -> str | None:
    """``SMS_REPLY_MESSAGE``, except to a keyword: Twilio answers those, and once is enough."""
    return None if incoming.keyword else settings.sms_reply_message
