"""Messaging Services: which of the account's numbers send and receive as one service.

A number in a Messaging Service receives as the service: Twilio adds its
``MessagingServiceSid`` to the incoming-message webhook
(https://www.twilio.com/docs/messaging/guides/webhook-request), and a recipient's
opt-out holds for the whole service, every number in its pool
(https://help.twilio.com/articles/223133627). A message sent through the
service goes out from a number of its pool, chosen once the message is queued
(https://www.twilio.com/docs/messaging/guides/outbound-message-status-in-status-callbacks).

Advanced Opt-Out is a service's switch (off by default): with it on, Twilio adds
``OptOutType`` (``STOP``, ``START`` or ``HELP``) to the webhook of a keyword it has
already answered, and takes the service's own keywords besides the defaults
(https://www.twilio.com/docs/messaging/tutorials/advanced-opt-out).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, get_args

from . import keywords
from .keywords import Keyword

#: "MGxxx" (https://www.twilio.com/docs/api/errors/21705).
_SID = re.compile(r"MG[0-9a-f]{32}")
#: Pool numbers in E.164 (https://www.twilio.com/docs/glossary/what-e164).
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
#: A custom keyword: a single word, as Twilio matches only single-word messages
#: (https://help.twilio.com/articles/223134027-Twilio-support-for-opt-out-keywords-SMS-STOP-filtering-).
#: Letters and digits, at most 32, is not documented by Twilio: chosen to keep the
#: console's input to what a texter types as one word.
_WORD = re.compile(r"[A-Za-z0-9]{1,32}")
#: ``OptOutType``, the webhook parameter naming the keyword Twilio answered.
OPT_OUT_TYPES: dict[Keyword, str] = {"opt-out": "STOP", "opt-in": "START", "help": "HELP"}


@dataclass(frozen=True)
class MessagingService:
    """One service: its SID, its sender pool (E.164 numbers of the account) and its
    Advanced Opt-Out (``keywords``: the service's own words, each a keyword kind)."""

    sid: str
    numbers: tuple[str, ...]
    advanced_opt_out: bool = False
    keywords: Mapping[str, Keyword] = field(default_factory=dict)

    def keyword_of(self, body: str) -> Keyword | None:
        """The keyword a message to the service is: one of its own words, else a default."""
        word = body.strip().upper()
        if self.advanced_opt_out and word in self.keywords:
            return self.keywords[word]
        return keywords.keyword_of(body)

    def opt_out_type(self, keyword: Keyword | None) -> str | None:
        """``OptOutType`` for the webhook: only under Advanced Opt-Out, only for a keyword."""
        return OPT_OUT_TYPES[keyword] if self.advanced_opt_out and keyword else None

    @classmethod
    def from_json(cls, data: Any) -> MessagingService:
        """``{"sid", "numbers", "advanced_opt_out"?, "keywords"?}``; ValueError if malformed.

        ``numbers`` may be a list or a comma-separated string, ``advanced_opt_out`` a
        boolean or a checked box's ``"on"``, ``keywords`` ``{"opt-out": ["ARRET"], ...}``
        (what the console's form sends).
        """
        if not isinstance(data, Mapping):
            raise ValueError("a Messaging Service is a JSON object")
        unknown = set(data) - {"sid", "numbers", "advanced_opt_out", "keywords"}
        if unknown:
            raise ValueError(f"unknown fields: {', '.join(sorted(unknown))}")
        sid = data.get("sid")
        if not isinstance(sid, str) or not _SID.fullmatch(sid):
            raise ValueError("'sid' must be a Messaging Service SID: MG and 32 hex digits")
        numbers = data.get("numbers", [])
        if isinstance(numbers, str):
            numbers = [n.strip() for n in numbers.split(",") if n.strip()]
        if (not isinstance(numbers, list) or not numbers
                or not all(isinstance(n, str) and _E164.fullmatch(n) for n in numbers)):
            raise ValueError("'numbers' must list the service's E.164 numbers (+14155550100)")
        switch = data.get("advanced_opt_out", False)
        if switch not in (True, False, "on"):
            raise ValueError("'advanced_opt_out' must be true or false")
        return cls(sid, tuple(dict.fromkeys(numbers)), switch in (True, "on"),
                   _custom_keywords(data.get("keywords", {})))

    def to_json(self) -> dict[str, Any]:
        words: dict[str, list[str]] = {}
        for word, kind in self.keywords.items():
            words.setdefault(kind, []).append(word)
        return {"sid": self.sid, "numbers": list(self.numbers),
                "advanced_opt_out": self.advanced_opt_out, "keywords": words}


def _custom_keywords(data: Any) -> dict[str, Keyword]:
    if not isinstance(data, Mapping) or not set(data) <= set(get_args(Keyword)):
        raise ValueError("'keywords' maps opt-out, opt-in or help to lists of words")
    custom: dict[str, Keyword] = {}
    for kind, words in data.items():
        if not isinstance(words, list) or not all(
                isinstance(w, str) and _WORD.fullmatch(w) for w in words):
            raise ValueError(f"'keywords.{kind}' must list single words")
        custom.update(dict.fromkeys((w.upper() for w in words), kind))
    return custom
