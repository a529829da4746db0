"""TwiML documents, built with twilio's TwiML builders so every string is escaped.

Voice requests take the app's own parameters (``message``, ``voice``,
``language``, as ``make_call`` sends them) or the classic twimlet form
``Message`` / ``Message[0]``, ``Message[1]``, ...: an http(s) value is played,
any other text is spoken, in index order.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from twilio.twiml import TwiML
from twilio.twiml.messaging_response import MessagingResponse
from twilio.twiml.voice_response import VoiceResponse

from shared.problems import invalid_field
from shared.request_body import Payload
from shared.urls import is_public_url
from shared.voice import DEFAULT_MESSAGE, DEFAULT_VOICE, MAX_MESSAGE, read_voice_options

XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'
MAX_PARTS = 20
_INDEXED = re.compile(r"Message\[([0-9]{1,3})\]")  # ASCII: int() reads any script


def is_incoming_sms(params: Mapping[str, str]) -> bool:
    """Twilio's messaging webhooks carry a MessageSid (SmsSid in older ones)."""
    return "MessageSid" in params or "SmsSid" in params


def is_incoming_call(params: Mapping[str, str]) -> bool:
    """A call from a phone to the number: ``Direction=inbound``, not from an SDK client
    (https://www.twilio.com/docs/voice/twiml#request-parameters). A call ``make_call``
    placed is ``outbound-api``: it plays its message."""
    return (params.get("Direction") == "inbound" and "CallSid" in params
            and bool(params.get("From")) and bool(params.get("To"))
            and not params["From"].startswith("client:"))


def reply_document(reply: str | None) -> str:
    response = MessagingResponse()
    if reply:
        response.message(reply)
    return _document(response)


def voice_document(params: Mapping[str, str]) -> str:
    """``<Say>``/``<Play>`` for the request's parameters; refuses bad values with 400."""
    payload = Payload({name: [value] for name, value in params.items()})
    options = read_voice_options(payload)
    options.setdefault("voice", DEFAULT_VOICE)
    response = VoiceResponse()
    for field, text in _script(payload, params):
        is_twimlet = field.startswith("Message")
        if is_twimlet and is_public_url(text, ("http", "https")):
            response.play(text)
        elif is_twimlet and text.lower().startswith(("http:", "https:")):
            raise invalid_field(field, "is not a valid http(s) URL")
        else:
            response.say(text, **options)
    return _document(response)


def _document(response: TwiML) -> str:
    """The same document as ``response.to_xml()``, serialized once as text.

    ``to_xml`` encodes to UTF-8 bytes and decodes them back; skipping that
    round trip is a third of the cost of answering Twilio. The builders
    still do all the escaping.
    """
    return XML_DECLARATION + ET.tostring(response.xml(), encoding="unicode")


def _script(payload: Payload, params: Mapping[str, str]) -> list[tuple[str, str]]:
    """The texts to speak or play, in order, with the field each came from."""
    indexed = sorted((int(m.group(1)), name) for name in params
                     if (m := _INDEXED.fullmatch(name)))
    names = (["Message"] if "Message" in params else []) + [name for _, name in indexed]
    if len(names) > MAX_PARTS:
        raise invalid_field("Message", f"takes at most {MAX_PARTS} parts")
    script = [(name, payload.text(name, max_length=MAX_MESSAGE)) for name in names]
    parts = [(name, text) for name, text in script if text]
    if parts:
        return parts
    return [("message", payload.text("message", max_length=MAX_MESSAGE) or DEFAULT_MESSAGE)]


def spoken_document(text: str, *, hang_up: bool) -> str:
    """``<Say>`` in the default voice, then ``<Hangup/>`` if asked: a refusal or a notice."""
    response = VoiceResponse()
    response.say(text, voice=DEFAULT_VOICE)
    if hang_up:
        response.hangup()
    return _document(response)


#: The steps of a dialed leg reported to ``dial_document``'s ``report_to``: "initiated"
#: would follow the call's own "ringing", and the call reports its own end.
LEG_EVENTS = "ringing answered completed"


def dial_document(*, number: str | None = None, client: str | None = None,
                  caller_id: str | None = None, report_to: str | None = None) -> str:
    """``<Dial>`` one phone number or one Voice SDK client.

    ``answerOnBridge``: the caller hears ringing until the callee answers, and
    the call is not answered (nor billed as such) before. ``report_to``: where
    Twilio reports the dialed leg's steps (``statusCallback`` on the noun, with
    ``ParentCallSid``: https://www.twilio.com/docs/voice/twiml/number#attributes-status-callback-event);
    a TwiML App's own status callback hears only the call's end.
    """
    response = VoiceResponse()
    dial = response.dial(caller_id=caller_id, answer_on_bridge=True)
    reports = ({"status_callback": report_to, "status_callback_event": LEG_EVENTS,
                "status_callback_method": "POST"} if report_to else {})
    if number is not None:
        dial.number(number, **reports)
    if client is not None:
        dial.client(client, **reports)
    return _document(response)


# --- incoming calls (shared.incoming_calls) -------------------------------------------
# Only attributes Twilio's TwiML pages document: <Reject>
# (https://www.twilio.com/docs/voice/twiml/reject), <Dial> action/method/timeout/
# answerOnBridge (https://www.twilio.com/docs/voice/twiml/dial), <Client>
# (https://www.twilio.com/docs/voice/twiml/client), <Redirect> method
# (https://www.twilio.com/docs/voice/twiml/redirect), <Play>
# (https://www.twilio.com/docs/voice/twiml/play), <Record> action/method/maxLength/
# playBeep/recordingStatusCallback*/transcribe/transcribeCallback
# (https://www.twilio.com/docs/voice/twiml/record), <Hangup>
# (https://www.twilio.com/docs/voice/twiml/hangup).


def reject_document() -> str:
    """``<Reject/>`` as the first verb: the call is never answered, so never billed."""
    response = VoiceResponse()
    response.reject()
    return _document(response)


def hangup_document() -> str:
    response = VoiceResponse()
    response.hangup()
    return _document(response)


def ring_document(identity: str, *, timeout: int, action: str) -> str:
    """Ring one Voice SDK client for ``timeout`` seconds; Twilio then posts the outcome
    (``DialCallStatus``) to ``action`` and plays what it answers. ``answerOnBridge``: the
    caller hears ringing, and the call is not answered, until the client picks up."""
    response = VoiceResponse()
    dial = response.dial(action=action, method="POST", timeout=timeout, answer_on_bridge=True)
    dial.client(identity)
    return _document(response)


def redirect_document(url: str) -> str:
    """Carry on with the TwiML at ``url`` (POST), the call's parameters sent along."""
    response = VoiceResponse()
    response.redirect(url, method="POST")
    return _document(response)


@dataclass(frozen=True)
class Greeting:
    """What a caller hears before the beep: ``text`` in ``voice``, or the audio at ``url``."""

    text: str
    voice: str
    language: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class Recording:
    """Where Twilio reports a voicemail: when it ends (``action``, TwiML), when its file
    is ready (``status_callback``), and its transcription (``transcribe_callback``: only
    when transcribing)."""

    max_seconds: int
    action: str
    status_callback: str
    transcribe_callback: str | None = None


def voicemail_document(greeting: Greeting, recording: Recording) -> str:
    """The greeting, then ``<Record>`` after a beep. The ``action`` is required: without
    one Twilio requests the current document again, which would ring the user again."""
    response = VoiceResponse()
    if greeting.url is not None:
        response.play(greeting.url)
    else:
        options = {"voice": greeting.voice, "language": greeting.language}
        response.say(greeting.text, **{k: v for k, v in options.items() if v is not None})
    transcription: dict[str, Any] = {}
    if recording.transcribe_callback is not None:
        transcription = {"transcribe": True, "transcribe_callback": recording.transcribe_callback}
    response.record(action=recording.action, method="POST", max_length=recording.max_seconds,
                    play_beep=True, recording_status_callback=recording.status_callback,
                    recording_status_callback_method="POST",
                    recording_status_callback_event="completed", **transcription)
    return _document(response)
