"""Twilio's standard SMS keywords: what a one-word message asks of the line it reached.

Twilio's default opt-out handling and Advanced Opt-Out share these lists and
match the whole message, trimmed, in any case. Source:
https://www.twilio.com/docs/messaging/tutorials/advanced-opt-out (opt-out:
STOP, UNSUBSCRIBE, END, QUIT, STOPALL, REVOKE, OPTOUT, CANCEL) and Twilio's
support article on opt-out keywords (opt-in START, YES, UNSTOP; help HELP, INFO).
"""

from __future__ import annotations

from typing import Literal

Keyword = Literal["opt-out", "opt-in", "help"]
KEYWORDS: dict[Keyword, frozenset[str]] = {
    "opt-out": frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE",
                          "OPTOUT"}),
    "opt-in": frozenset({"START", "YES", "UNSTOP"}),
    "help": frozenset({"HELP", "INFO"}),
}
#: ``OptOutType``, which Twilio adds to the webhook under Advanced Opt-Out.
OPT_OUT_TYPES: dict[str, Keyword] = {"STOP": "opt-out", "START": "opt-in", "HELP": "help"}


def keyword_of(body: str, opt_out_type: str | None = None) -> Keyword | None:
    """The keyword a message is: Twilio's own verdict when it gives one, else the lists."""
    if opt_out_type:
        return OPT_OUT_TYPES.get(opt_out_type.strip().upper())
    word = body.strip().upper()
    return next((kind for kind, words in KEYWORDS.items() if word in words), None)
