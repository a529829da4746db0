"""What a callee hears: voice and language choices, checked before they reach TwiML.

Only what Twilio's ``<Say>`` page documents today
(https://www.twilio.com/docs/voice/twiml/say): ``man`` or ``woman``, an Amazon Polly
voice (``Polly.Amy``, ``Polly.Joanna-Neural``) or a Google voice
(``Google.en-GB-Standard-A``), and a language written as a lowercase language and an
uppercase locale (``en-US``). ``alice`` is no longer on that page, so the app no longer
offers it. A Google voice names its own locale: another ``language`` with it is one of
the "invalid combinations" that make Twilio skip the ``<Say>`` (warning 13511), so it is
refused here instead of leaving the callee in silence.
"""

from __future__ import annotations

import re

from shared.problems import invalid_field
from shared.request_body import Payload

DEFAULT_VOICE = "woman"
DEFAULT_MESSAGE = "Ahoy hoy! This call comes from Twilio through Azure Functions."
MAX_MESSAGE = 1000
_BASIC = frozenset({"man", "woman"})
_POLLY = re.compile(r"Polly\.[A-Z][A-Za-z]{1,31}(-(Neural|Generative|LongForm))?")
_GOOGLE = re.compile(r"Google\.([a-z]{2,3}-[A-Z]{2})(-[A-Za-z0-9]{1,16}){2,3}")
_LANGUAGE = re.compile(r"[a-z]{2,3}-[A-Z]{2}")


def read_voice_options(payload: Payload) -> dict[str, str]:
    """The request's checked ``voice`` and ``language`` (only those given), for a query
    or ``<Say>``."""
    voice = payload.text("voice", max_length=64)
    language = payload.text("language", max_length=16)
    refusal = voice_refusal(voice, language)
    if refusal is not None:
        raise invalid_field(*refusal)
    options = {"voice": voice, "language": language}
    return {name: value for name, value in options.items() if value is not None}


def voice_refusal(voice: str | None, language: str | None) -> tuple[str, str] | None:
    """Why ``voice`` and ``language`` cannot go to ``<Say>`` (the field, the reason), or
    None: the one rule for a request's choice and for the voicemail greeting's settings."""
    google = _GOOGLE.fullmatch(voice) if voice is not None else None
    if voice is not None and voice not in _BASIC and not (google or _POLLY.fullmatch(voice)):
        return ("voice", "must be man, woman, or a Polly. or Google. voice name (like "
                "Polly.Amy or Google.en-GB-Standard-A)")
    if language is not None:
        if not _LANGUAGE.fullmatch(language):
            return "language", "must be a language and locale like en-US"
        if google and google.group(1) != language:
            return ("language", f"must be {google.group(1)}, the language of the voice "
                    f"{voice}, or be left out")
    return None
