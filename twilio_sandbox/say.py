"""The voices and languages ``<Say>`` takes, as Twilio documents them today.

https://www.twilio.com/docs/voice/twiml/say: ``voice`` is ``man``, ``woman`` (the
basic voices), a Twilio-supported Amazon Polly voice (``Polly.Amy``) or Google voice
(``Google.en-GB-Standard-A``); ``language`` a lowercase language and an uppercase
locale (``en-US``, the default). ``alice`` is no longer on that page, so the sandbox
treats it as any unknown voice. "Using an invalid combination of voice and language
may result in error and <Say> instruction failure": a Google voice names its own
locale, so another ``language`` with it is such a combination. Polly voices each
speak one language too, but the sandbox holds no list of them and takes any.

Twilio logs warning 13511 ("Say: Invalid voice value",
https://www.twilio.com/docs/api/errors/13511) and the ``<Say>`` is not heard; the
call goes on. Twilio names no ``<Say>``-specific code for a bad language, so that
failure carries 13511 too.
"""

import re

INVALID_VOICE = 13511
BASIC_VOICES = frozenset({"man", "woman"})
_POLLY = re.compile(r"Polly\.[A-Z][A-Za-z]{1,31}(-(Neural|Generative|LongForm))?")
_GOOGLE = re.compile(r"Google\.([a-z]{2,3}-[A-Z]{2})(-[A-Za-z0-9]{1,16}){2,3}")
_LANGUAGE = re.compile(r"[a-z]{2,3}-[A-Z]{2}")


def say_warning(voice: str | None, language: str | None) -> str | None:
    """The 13511 warning Twilio logs for this ``<Say>`` voice and language; None if fine."""
    google = _GOOGLE.fullmatch(voice) if voice else None
    if voice is not None and voice not in BASIC_VOICES and not (
            google or _POLLY.fullmatch(voice)):
        return f"{INVALID_VOICE} Say: Invalid voice value {voice!r}"
    if language is not None and not _LANGUAGE.fullmatch(language):
        return f"{INVALID_VOICE} Say: invalid language {language!r} (like en-US)"
    if google and language is not None and google.group(1) != language:
        return (f"{INVALID_VOICE} Say: voice {voice!r} speaks {google.group(1)}, "
                f"not {language}")
    return None
