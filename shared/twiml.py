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
