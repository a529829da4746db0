"""Twilio's default SMS keywords, as Twilio documents them: what the sandbox does on its own.

Twilio matches the whole message, trimmed, in any case, on long-code numbers, and
answers it itself (opting the texter out of, or back into, messages from that
number) whatever the app's webhook says. Sources:
https://www.twilio.com/docs/messaging/tutorials/advanced-opt-out ("By default,
Twilio handles ... STOP, UNSUBSCRIBE, END, QUIT, STOPALL, REVOKE, OPTOUT, and
CANCEL") and
https://help.twilio.com/articles/223134027-Twilio-support-for-opt-out-keywords-SMS-STOP-filtering-
(opt-in START, YES, UNSTOP; help HELP, INFO).

The sandbox keeps its own copy on purpose: it never reads the app's list, so a
test that texts REVOKE checks the app against Twilio, not against itself.
"""

from typing import Literal

Keyword = Literal["opt-out", "opt-in", "help"]

_KEYWORDS: dict[str, Keyword] = {
    **dict.fromkeys(("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE",
                     "OPTOUT"), "opt-out"),
    **dict.fromkeys(("START", "YES", "UNSTOP"), "opt-in"),
    **dict.fromkeys(("HELP", "INFO"), "help"),
}

#: What Twilio answers each keyword with by default: the "automatic standard replies"
#: listed on
#: https://help.twilio.com/articles/223134027-Twilio-support-for-opt-out-keywords-SMS-STOP-filtering-
#: (long codes; toll-free numbers get a carrier's "NETWORK MSG" instead,
#: https://support.twilio.com/hc/en-us/articles/360058144374, not modelled). The exact wording here
#: was not re-checked against that article's current text.
REPLIES: dict[Keyword, str] = {
    "opt-out": "You have successfully been unsubscribed. You will not receive any more "
               "messages from this number. Reply START to resubscribe.",
    "opt-in": "You have successfully been re-subscribed to messages from this number. "
              "Reply HELP for help. Reply STOP to unsubscribe. Msg&Data Rates May Apply.",
    "help": "Reply STOP to unsubscribe. Msg&Data Rates May Apply.",
}


def keyword_of(body: str) -> Keyword | None:
    """The keyword a message is to Twilio, if any: "Only single-word messages will
    trigger the block" ("STOP PLEASE" does not; same help article)."""
    return _KEYWORDS.get(body.strip().upper())
