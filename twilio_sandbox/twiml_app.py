"""A TwiML App, as one created in Twilio's console: what Voice SDK tokens may name."""

from typing import NamedTuple


class TwimlApp(NamedTuple):
    """A TwiML App: where Twilio asks what an SDK call connects to, and reports its end."""

    sid: str
    account_sid: str
    voice_url: str
    status_callback: str | None = None
