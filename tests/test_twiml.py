"""twiml: signature checks, voice and messaging documents parsed as XML."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urlencode

import pytest
from harness import AUTH_TOKEN, invoke, refused, request
from twilio.request_validator import RequestValidator

from shared.voice import DEFAULT_MESSAGE

URL = "https://contoso.azurewebsites.net/api/twiml"
CALL = {"CallSid": "CA" + "d4" * 16, "AccountSid": "AC" + "a1" * 16, "From": "+15005550006",
        "To": "+14155552671", "CallStatus": "in-progress", "Direction": "outbound-api"}


@pytest.fixture(autouse=True)
def on_azure(app_env, monkeypatch):
    """As deployed: Azure sets WEBSITE_HOSTNAME, the origin Twilio signs URLs for."""
    monkeypatch.setenv("WEBSITE_HOSTNAME", "contoso.azurewebsites.net")


def sign(url, params=None, token=AUTH_TOKEN):
    return RequestValidator(token).compute_signature(url, params or {})


def post(url, params, signature):
    headers = {"X-Twilio-Signature": signature} if signature is not None else {}
    return invoke("twiml", request("POST", url, form=params, headers=headers))


def get(url, signature=None):
    headers = {"X-Twilio-Signature": signature} if signature is not None else {}
    return invoke("twiml", request("GET", url, headers=headers))


def document(response):
    assert response.status_code == 200, response.get_body()
    assert (response.mimetype, response.charset) == ("text/xml", "utf-8")
    root = ET.fromstring(response.get_body())
    assert root.tag == "Response"
    return root


def test_signed_post_gets_the_default_voice_twiml(app_env):
    url = f"{URL}?{urlencode({'message': 'Hello <b> & \"you\"'})}"
    root = document(post(url, CALL, sign(url, CALL)))
    [say] = list(root)
    assert say.tag == "Say" and say.get("voice") == "woman"
    assert say.text == 'Hello <b> & "you"'


def test_voice_and_language_are_applied(app_env):
    url = f"{URL}?message=Bonjour&voice=Polly.Celine&language=fr-FR"
    say = document(post(url, CALL, sign(url, CALL)))[0]
    assert (say.get("voice"), say.get("language"), say.text) == ("Polly.Celine", "fr-FR",
                                                                 "Bonjour")


def test_no_message_speaks_the_default(app_env):
    say = document(post(URL, CALL, sign(URL, CALL)))[0]
    assert (say.tag, say.text) == ("Say", DEFAULT_MESSAGE)


def test_twimlet_messages_in_index_order_with_play_for_urls(app_env):
    query = {"Message[2]": "goodbye", "Message[0]": "first",
             "Message[1]": "https://example.com/tone.mp3", "Message[10]": "last"}
    url = f"{URL}?{urlencode(query)}"
    root = document(get(url, sign(url)))
    assert [(e.tag, e.text) for e in root] == [
        ("Say", "first"), ("Play", "https://example.com/tone.mp3"), ("Say", "goodbye"),
        ("Say", "last"),
    ]


def test_single_twimlet_message(app_env):
    url = f"{URL}?{urlencode({'Message': 'https://example.com/a.mp3'})}"
    assert document(get(url, sign(url)))[0].tag == "Play"


def test_incoming_sms_gets_the_reply(app_env, monkeypatch):
    monkeypatch.setenv("SMS_REPLY_MESSAGE", "Thanks & bye <3")
    params = {"MessageSid": "SM" + "e5" * 16, "AccountSid": CALL["AccountSid"],
              "From": "+14155552671", "To": "+15005550006", "Body": "hi"}
    root = document(post(URL, params, sign(URL, params)))
    [message] = list(root)
    assert message.tag == "Message" and message.text == "Thanks & bye <3"


def test_incoming_sms_without_reply_gets_an_empty_response(app_env):
    params = {"SmsSid": "SM" + "e5" * 16, "AccountSid": CALL["AccountSid"],
              "From": "+14155552671", "To": "+15005550006", "Body": "hi"}
    assert list(document(post(URL, params, sign(URL, params)))) == []


@pytest.mark.parametrize(
    "signature",
    [None, "", sign(URL, CALL, token="another-token"), sign(URL + "?x=1", CALL)],
    ids=["missing", "empty", "wrong-token", "other-url"],
)
def test_bad_signatures_get_403(app_env, signature):
    response = post(URL, CALL, signature)
    refused(response, 403, "invalid-signature")


def test_tampered_parameter_gets_403(app_env):
    signature = sign(URL, CALL)
    response = post(URL, {**CALL, "To": "+19005551234"}, signature)
    refused(response, 403, "invalid-signature")


def test_tampered_query_gets_403(app_env):
    url = f"{URL}?message=hello"
    response = post(f"{URL}?message=goodbye", CALL, sign(url, CALL))
    refused(response, 403, "invalid-signature")


@pytest.mark.parametrize(
    ("signed", "received"),
    [
        ("https://contoso.azurewebsites.net:443/api/twiml", URL),
        (URL, "https://contoso.azurewebsites.net:443/api/twiml"),
    ],
)
def test_default_port_variants_validate(app_env, signed, received):
    document(post(received, CALL, sign(signed, CALL)))


def test_public_base_url_behind_a_proxy(app_env, monkeypatch):
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://voice.contoso.com")
    twilio_called = "https://voice.contoso.com/api/twiml?message=hi"
    seen_by_app = "http://10.1.2.3:8080/api/twiml?message=hi"
    document(post(seen_by_app, CALL, sign(twilio_called, CALL)))
    refused(post(seen_by_app, CALL, sign(seen_by_app, CALL)), 403, "invalid-signature")


def test_signature_checks_can_be_turned_off(app_env, monkeypatch):
    monkeypatch.setenv("TWILIO_VALIDATE_SIGNATURE", "false")
    document(get(URL))


def test_other_methods_get_405(app_env):
    response = invoke("twiml", request("DELETE", URL))
    refused(response, 405, "method-not-allowed")
    assert response.headers["Allow"] == "GET, POST"


@pytest.mark.parametrize(
    "query",
    [{"message": "x" * 1001}, {"voice": "evil\"/><Dial>"}, {"language": "<>"},
     {f"Message[{i}]": "x" for i in range(21)}, {"Message[0]": "http://"}],
)
def test_absurd_or_bad_parameters_get_400(app_env, query):
    url = f"{URL}?{urlencode(query)}"
    response = get(url, sign(url))
    refused(response, 400, "invalid-field")


def test_oversized_body_gets_413(app_env):
    params = {**CALL, "Padding": "x" * 70000}
    response = post(URL, params, sign(URL, params))
    refused(response, 413, "body-too-large")


def test_twiml_imports_neither_the_rest_client_nor_the_store():
    """Both cost a voice call's cold start, and the caller waits on it: the store is
    imported by the first incoming SMS, which nobody waits on."""
    probe = ("import sys, twiml; print(sorted(m for m in ('twilio.rest', 'azure.data.tables')"
             " if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True, cwd=Path(__file__).parents[1])
    assert result.stdout.strip() == "[]"



def _twilio_voice(*steps):
    from twilio.twiml.voice_response import VoiceResponse

    response = VoiceResponse()
    for verb, text, options in steps:
        getattr(response, verb)(text, **options)
    return response.to_xml()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"message": "Ahoy <&> \"hi\" 'x' é ☎"},
         _twilio_voice(("say", "Ahoy <&> \"hi\" 'x' é ☎", {"voice": "woman"}))),
        ({"Message[0]": "a", "Message[1]": "https://e.com/a.mp3"},
         _twilio_voice(("say", "a", {"voice": "woman"}), ("play", "https://e.com/a.mp3", {}))),
        ({"message": "Bonjour", "voice": "Polly.Celine", "language": "fr-FR"},
         _twilio_voice(("say", "Bonjour", {"voice": "Polly.Celine", "language": "fr-FR"}))),
    ],
)
def test_documents_are_what_twilios_serializer_writes(query, expected):
    from twilio.twiml.messaging_response import MessagingResponse

    from shared.twiml import reply_document, voice_document

    assert voice_document(query) == expected
    reply = MessagingResponse()
    reply.message("Thanks <&>")
    assert reply_document("Thanks <&>") == reply.to_xml()


def test_malformed_host_cannot_carry_a_valid_signature(app_env):
    response = post("http://[x/api/twiml", CALL, "anything")
    refused(response, 403, "invalid-signature")


def test_non_ascii_signature_is_refused_not_crashed(app_env):
    response = post(URL, CALL, "é" * 28)
    refused(response, 403, "invalid-signature")


def test_body_hash_only_counts_as_the_exact_parameter(app_env):
    url = f"{URL}?xbodySHA256=1"
    response = post(url, CALL, sign(url, {}))
    refused(response, 403, "invalid-signature")
    document(post(url, CALL, sign(url, CALL)))


def test_azure_host_name_is_the_signed_origin(app_env, monkeypatch):
    monkeypatch.setenv("WEBSITE_HOSTNAME", "contoso.azurewebsites.net")
    seen = "http://10.0.0.7:8080/api/twiml?message=hi"
    document(post(seen, CALL, sign("https://contoso.azurewebsites.net/api/twiml?message=hi", CALL)))
    refused(post(seen, CALL, sign(seen, CALL)), 403, "invalid-signature")


@pytest.mark.parametrize("index", ["\u0661", "\uff11", "\u00b9", "\U0001d7cf"],
                         ids=["arabic-indic", "fullwidth", "superscript", "math-bold"])
def test_twimlet_indexes_take_ascii_digits_only(app_env, index):
    """An index in another script's digits is no index: like any unknown parameter, ignored."""
    query = {"Message[0]": "first", f"Message[{index}]": "https://example.com/tone.mp3"}
    url = f"{URL}?{urlencode(query)}"
    root = document(get(url, sign(url)))
    assert [(e.tag, e.text) for e in root] == [("Say", "first")]


#: The attributes each verb and noun takes, as Twilio's TwiML pages list them: a document
#: the app writes may use these and nothing else (Twilio ignores, or warns of, the rest).
DOCUMENTED = {
    "Response": set(),
    # https://www.twilio.com/docs/messaging/twiml/message
    "Message": {"to", "from", "action", "method", "statusCallback"},
    # https://www.twilio.com/docs/voice/twiml/say
    "Say": {"voice", "language", "loop"},
    # https://www.twilio.com/docs/voice/twiml/play
    "Play": {"loop", "digits"},
    # https://www.twilio.com/docs/voice/twiml/hangup
    "Hangup": set(),
    # https://www.twilio.com/docs/voice/twiml/reject
    "Reject": {"reason"},
    # https://www.twilio.com/docs/voice/twiml/redirect
    "Redirect": {"method"},
    # https://www.twilio.com/docs/voice/twiml/dial
    "Dial": {"action", "answerOnBridge", "callerId", "callReason", "hangupOnStar", "method",
             "record", "recordingStatusCallback", "recordingStatusCallbackMethod",
             "recordingStatusCallbackEvent", "recordingTrack", "referUrl", "referMethod",
             "ringTone", "timeLimit", "timeout", "trim", "sequential"},
    # https://www.twilio.com/docs/voice/twiml/client
    "Client": {"url", "method", "statusCallbackEvent", "statusCallback",
               "statusCallbackMethod"},
    # https://www.twilio.com/docs/voice/twiml/number
    "Number": {"sendDigits", "url", "method", "statusCallbackEvent", "statusCallback",
               "statusCallbackMethod", "byoc", "machineDetection"},
    # https://www.twilio.com/docs/voice/twiml/record
    "Record": {"action", "method", "timeout", "finishOnKey", "maxLength", "playBeep",
               "trim", "recordingStatusCallback", "recordingStatusCallbackMethod",
               "recordingStatusCallbackEvent", "storageUrl", "storageUrlMethod",
               "transcribe", "transcribeCallback"},
}


def _every_document():
    from shared.twiml import (
        Greeting,
        Recording,
        dial_document,
        hangup_document,
        redirect_document,
        reject_document,
        reply_document,
        ring_document,
        spoken_document,
        voice_document,
        voicemail_document,
    )

    events = "https://contoso.azurewebsites.net/api/call_events?step={}#rp=5xx,ct"
    recording = Recording(120, events.format("recorded"), events.format("recording"))
    transcribed = Recording(120, events.format("recorded"), events.format("recording"),
                            events.format("transcribed"))
    return {
        "reply": reply_document("Thanks"),
        "voice": voice_document({"Message[0]": "hi", "Message[1]": "https://e.com/a.mp3"}),
        "spoken": spoken_document("Goodbye", hang_up=True),
        "dial number": dial_document(number="+14155552671", caller_id=FROM,
                                     report_to="https://e.com/cb"),
        "dial client": dial_document(client="solo"),
        "ring": ring_document("user_3aaad_3ax", timeout=25, action=events.format("dialed")),
        "redirect": redirect_document(events.format("dialed")),
        "reject": reject_document(),
        "hangup": hangup_document(),
        "voicemail": voicemail_document(Greeting("Leave a message", "Polly.Celine", "fr-FR"),
                                        recording),
        "voicemail played, transcribed": voicemail_document(
            Greeting("x", "woman", url="https://e.com/greeting.mp3"), transcribed),
    }


FROM = "+15005550006"


@pytest.mark.parametrize(("name", "document"), list(_every_document().items()))
def test_every_document_uses_only_what_twilio_documents(name, document):
    root = ET.fromstring(document.removeprefix('<?xml version="1.0" encoding="UTF-8"?>'))
    assert root.tag == "Response"
    for element in root.iter():
        assert element.tag in DOCUMENTED, f"{name}: <{element.tag}> is no verb the app uses"
        assert set(element.attrib) <= DOCUMENTED[element.tag], (name, element.tag,
                                                                element.attrib)
    for record in root.iter("Record"):  # without an action Twilio loops to the same URL
        assert record.get("action"), name
    for dial in root.iter("Dial"):
        assert 5 <= int(dial.get("timeout", "30")) <= 600, name
