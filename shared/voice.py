"""What a callee hears: voice and language choices, checked before they reach TwiML."""

from __future__ import annotations

import re

from shared.problems import invalid_field
from shared.request_body import Payload

DEFAULT_VOICE = "woman"
DEFAULT_MESSAGE = "Ahoy hoy! This call comes from Twilio through Azure Functions."
MAX_MESSAGE = 1000
# Twilio's basic voices and its Polly/Google neural voice names.
_VOICE = re.compile(r"man|woman|alice|(Polly|Google)\.[A-Za-z0-9-]{1,48}(-Neural|-Generative)?")
_LANGUAGE = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8}){0,2}")


def read_voice_options(payload: Payload) -> dict[str, str]:
    """The request's checked ``voice`` and ``language`` (only those given), for a query
    or ``<Say>``."""
    voice = payload.text("voice", max_length=64)
    language = payload.text("language", max_length=16)
    options: dict[str, str] = {}
    if voice is not None:
        if not _VOICE.fullmatch(voice):
            raise invalid_field("voice",
                                "must be man, woman, alice, or a Polly./Google. voice name")
        options["voice"] = voice
    if language is not None:
        if not _LANGUAGE.fullmatch(language):
            raise invalid_field("language", "must be a language tag like en-US")
        options["language"] = language
    return options
