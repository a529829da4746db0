"""What Twilio does once a call is queued: fetch the call's TwiML, signed, and "play" it.

The request matches Twilio's (form parameters, ``X-Twilio-Signature`` computed with
the account's auth token, ``TwilioProxy`` user agent), so the app's webhook,
signature check included, is exercised end to end. The answer is checked as Twilio
checks it (status, size, ``Content-Type``, a ``<Response>`` root), parsed, and what
the callee would hear is recorded on the call and logged.

When the TwiML cannot be had, the callee has already answered: Twilio logs the
error, asks the call's ``FallbackUrl`` (with ``ErrorCode`` and ``ErrorUrl``) if it
has one, and otherwise plays its own error message; either way the call completes
(https://www.twilio.com/docs/usage/security/availability-reliability#fallback-urls).
"""

import logging
import xml.etree.ElementTree as ET
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode

import aiohttp
import yarl
from twilio.request_validator import RequestValidator

from . import magic
from .bodies import decode
from .masking import mask
from .overrides import Attempt, NotSent, split
from .resources import API_VERSION, Resource, now, rfc2822
from .say import say_warning
from .validation import call_timeout
from .webhook_log import read_answer, show_answer

log = logging.getLogger(__name__)

USER_AGENT = "TwilioProxy/1.1"

Heard = dict[str, str | None]


class CallFailure(Exception):
    """Why Twilio would fail the call, with the code its debugger would log."""

    code = 11200  # HTTP retrieval failure

    def __str__(self) -> str:
        return f"{self.code} {super().__str__()}"


class NotFetched(CallFailure):
    """The Url's connection overrides stop Twilio fetching it (``overrides.NotSent``)."""

    code = NotSent.code


class TwimlError(CallFailure, ValueError):
    """The answer cannot be played: not XML (https://www.twilio.com/docs/errors/12100)."""

    code = 12100  # Document parse failure


class NotResponse(TwimlError):
    """XML whose root is not ``<Response>`` (https://www.twilio.com/docs/api/errors/12102)."""

    code = 12102


class InvalidContentType(CallFailure):
    """An answer of a type Twilio cannot play, or of none
    (https://www.twilio.com/docs/errors/12300)."""

    code = 12300


class TooLarge(CallFailure):
    """An answer over 64 kB (https://www.twilio.com/docs/api/errors/11750)."""

    code = 11750


class ConnectionFailure(CallFailure):
    """No answer at all: connection refused, reset, timed out."""

    code = 11205


#: The largest answer Twilio reads (11750).
MAX_TWIML_BYTES = 64 * 1024
#: What Twilio does with an answer, by media type: TwiML; text it reads out; audio it
#: plays, then hangs up (https://www.twilio.com/docs/api/twiml/your_response, "Twilio
#: Understands MIME Types"). Anything else, or no Content-Type, is 12300.
TWIML_TYPES = frozenset({"text/xml", "application/xml", "text/html"})
#: What the callee hears when Twilio has no TwiML to play: "an error is logged and a
#: pre-recorded message is played back to the caller indicating that an error has
#: occurred" (https://www.twilio.com/en-us/blog/a-hidden-gem-fallback-urls-html). Its
#: exact words are not documented.
APPLICATION_ERROR = "We are sorry, an application error has occurred. Goodbye."


def read_response(text: str) -> ET.Element:
    """The ``<Response>`` element of a TwiML document (voice or messaging), or TwimlError."""
    try:
        # The document comes from the app under test on this machine, not from a
        # stranger, and expat resolves no external entities.
        root = ET.fromstring(text)  # noqa: S314
    except ET.ParseError as exc:
        raise TwimlError(f"Document parse failure: not XML: {exc}") from None
    if root.tag != "Response":
        raise NotResponse(f"The root element must be Response, not <{root.tag}>")
    return root


def parse_twiml(text: str) -> list[Heard]:
    """What the callee hears, in document order (see ``heard_in``)."""
    return heard_in(read_response(text))[0]


def heard_in(root: ET.Element) -> tuple[list[Heard], list[str]]:
    """What the callee hears, in document order, and the warnings Twilio logs on the way.

    ``Say`` gives its text (whitespace collapsed), ``voice`` and ``language``, unless
    Twilio would not say it (``say.say_warning``); ``Play`` its URL; any other verb just
    its name. ``Gather`` is entered, since the prompts nested in it are heard too.
    """
    heard: list[Heard] = []
    warnings: list[str] = []
    _walk(root, heard, warnings)
    return heard, warnings


def _walk(parent: ET.Element, heard: list[Heard], warnings: list[str]) -> None:
    for element in parent:
        if element.tag == "Say":
            voice, language = element.get("voice"), element.get("language")
            warning = say_warning(voice, language)
            if warning is not None:
                warnings.append(warning)
                continue
            heard.append(
                {
                    "verb": "Say",
                    "text": " ".join("".join(element.itertext()).split()),
                    "voice": voice,
                    "language": language,
                }
            )
        elif element.tag == "Play":
            heard.append({"verb": "Play", "url": (element.text or "").strip()})
        else:
            heard.append({"verb": str(element.tag)})
            if element.tag == "Gather":
                _walk(element, heard, warnings)


def describe(item: Heard) -> str:
    """One log line's worth of what the callee hears."""
    if item["verb"] == "Say":
        voice = ", ".join(f"{key}={item[key]}" for key in ("voice", "language") if item[key])
        return f"Say{f' ({voice})' if voice else ''}: {item['text']}"
    if item["verb"] == "Play":
        return f"Play {item['url']}"
    return f"<{item['verb']}>"


def first_value(request: dict[str, Any], key: str) -> str | None:
    """A request parameter's value (its first, when it was sent more than once), or None."""
    value = request.get(key)
    if isinstance(value, list):
        value = value[0] if value else None
    return value or None


def call_params(call: Resource) -> dict[str, str]:
    """The parameters Twilio sends when it asks for an answered call's TwiML (either way)."""
    params = {
        "CallSid": call["sid"],
        "AccountSid": call["account_sid"],
        "From": call["from"],
        "To": call["to"],
        "CallStatus": "in-progress",
        "Direction": call["direction"],
        "ApiVersion": API_VERSION,
    }
    if call.get("answered_by"):  # synchronous AMD: detected before the TwiML is fetched
        params["AnsweredBy"] = call["answered_by"]
    return params


def signed_request(
    url: str, method: str, params: dict[str, str], auth_token: str
) -> tuple[str, dict[str, str] | None, dict[str, str]]:
    """URL, form body and headers of the webhook request, signed like Twilio signs it.

    POST signs the URL plus the form parameters; GET carries the parameters in the
    query string and signs that full URL alone. A fragment (connection overrides) is
    neither requested nor signed
    (https://www.twilio.com/docs/usage/webhooks/webhooks-connection-overrides).
    """
    url = url.partition("#")[0]
    validator = RequestValidator(auth_token)
    body: dict[str, str] | None
    if method == "GET":
        separator = "" if url.endswith(("?", "&")) else "&" if "?" in url else "?"
        url = f"{url}{separator}{urlencode(params)}"
        signature = validator.compute_signature(url, {})
        body = None
    else:
        signature = validator.compute_signature(url, params)
        body = params
    headers = {
        "X-Twilio-Signature": signature,
        "User-Agent": USER_AGENT,
        "Content-Type": "application/x-www-form-urlencoded",
    }
    return url, body, headers


def finish(call: Resource, status: str, error: str | None = None) -> None:
    """End the call: a completed call lasted from its answer, any other none."""
    stamp = rfc2822(now())
    seconds = 0
    if status == "completed" and call.get("start_time"):
        elapsed = (now() - parsedate_to_datetime(call["start_time"])).total_seconds()
        seconds = max(1, round(elapsed))  # start_time has whole seconds: about right
    call.update(status=status, end_time=stamp, date_updated=stamp, duration=str(seconds),
                **({"error": error} if error else {}))
    if error:
        log.warning("call %s %s: %s", call["sid"], status, error)
    else:
        log.info("call %s %s", call["sid"], status)


async def fetch_twiml(session: aiohttp.ClientSession, call: Resource, auth_token: str,
                      params: dict[str, str] | None = None) -> str:
    """Fetch the call's Url (with ``params`` over the usual ones), retried as its connection
    overrides say; record the answer on the call; raise unless it is 2xx."""
    request = call["request"]
    method = (first_value(request, "Method") or "POST").upper()
    target, overrides = split(first_value(request, "Url") or "")
    url, body, headers = signed_request(
        target, method, {**call_params(call), **(params or {})}, auth_token
    )

    async def attempt(current: Attempt) -> None:
        # Fetch the URL exactly as signed, as Twilio does: a plain string would be
        # re-quoted by yarl (%21 -> !) and no longer match its signature.
        context: dict[str, Any] = {}  # the webhook log's record of this request
        async with session.request(method, yarl.URL(url, encoded=True), data=body,
                                   headers=headers, timeout=current.timeout,
                                   trace_request_ctx=context) as answer:
            current.status = call["twiml_status"] = answer.status
            call["twiml_type"] = answer.headers.get("Content-Type")
            call["twiml"] = None
            if not 200 <= answer.status < 300:  # its body is never played
                await show_answer(answer, context)
                return
            # Twilio reads no further than 64 kB: neither does the sandbox.
            data, whole = await read_answer(answer, MAX_TWIML_BYTES, context)
            if not whole:
                raise TooLarge(f"TwiML response body too large: {url} answered over 64 kB")
            call["twiml"] = decode(data, answer.charset)

    try:
        await overrides.send(attempt)
    except NotSent as error:
        raise NotFetched(error.detail) from None
    if not 200 <= call["twiml_status"] < 300:
        raise CallFailure(
            f"HTTP retrieval failure: {method} {url} answered {call['twiml_status']}")
    return call["twiml"]


def pick_up(call: Resource) -> None:
    """The callee answers: ``in-progress``, and who answered when the call asked for
    Answering Machine Detection (``magic.answered_by``)."""
    stamp = rfc2822(now())
    detection = first_value(call["request"], "MachineDetection")
    call.update(status="in-progress", start_time=call.get("start_time") or stamp,
                date_updated=stamp, answered_by=magic.answered_by(call["to"], detection))


def rings_out(call: Resource) -> bool:
    """Whether the call stops ringing, unanswered, at its ``Timeout``."""
    return magic.rings_out(call["to"], call_timeout(call["request"]))


def playable(record: Resource, text: str, url: str) -> str:
    """The TwiML a 2xx answer amounts to (recorded on ``record`` by ``fetch_twiml``):
    11750 past 64 kB, 12300 for a type Twilio cannot play; text becomes a ``<Say>``,
    audio a ``<Play>`` of ``url``."""
    if len(text.encode()) > MAX_TWIML_BYTES:
        raise TooLarge(f"TwiML response body too large: {url} answered over 64 kB")
    media = (record.get("twiml_type") or "").split(";")[0].strip().lower()
    if media in TWIML_TYPES:
        return text
    spoken = ET.Element("Response")
    if media == "text/plain":
        ET.SubElement(spoken, "Say").text = text
    elif media.startswith("audio/"):
        ET.SubElement(spoken, "Play").text = url.partition("#")[0]
    else:
        raise InvalidContentType(f"Invalid Content-Type: {url} answered "
                                 f"{media or 'no Content-Type'}")
    return ET.tostring(spoken, encoding="unicode")


async def answer_document(session: aiohttp.ClientSession, call: Resource, auth_token: str,
                          params: dict[str, str] | None = None) -> ET.Element:
    """The ``<Response>`` the answered call plays: its Url's (else its inline Twiml), else
    its FallbackUrl's, else Twilio's error message; a failure is logged on the call."""
    request = call["request"]
    found = await _document(session, call, auth_token, params)
    if isinstance(found, ET.Element):
        return found
    errors = [str(found)]
    fallback = first_value(request, "FallbackUrl")
    if fallback:
        # Asked like the Url, with the error and the URL it happened on
        # (https://www.twilio.com/docs/usage/security/availability-reliability).
        asking = {**call, "request": {**request, "Url": fallback,
                                      "Method": first_value(request, "FallbackMethod") or "POST"}}
        retry = await _document(session, asking, auth_token, {
            **(params or {}), "ErrorCode": str(found.code),
            "ErrorUrl": (first_value(request, "Url") or "").partition("#")[0]})
        if isinstance(retry, ET.Element):
            call["error"] = errors[0]
            log.warning("call %s: %s; its FallbackUrl answered", call["sid"], errors[0])
            return retry
        errors.append(f"FallbackUrl: {retry}")
    call["error"] = "; ".join(errors)
    log.warning("call %s: %s; Twilio's error message is played", call["sid"], call["error"])
    spoken = ET.Element("Response")
    ET.SubElement(spoken, "Say").text = APPLICATION_ERROR
    return spoken


async def _document(session: aiohttp.ClientSession, call: Resource, auth_token: str,
                    params: dict[str, str] | None) -> ET.Element | CallFailure:
    """The call's document (its Url's, else its inline Twiml), or why there is none."""
    url = first_value(call["request"], "Url")
    try:
        if url:
            text = playable(call, await fetch_twiml(session, call, auth_token, params), url)
        else:
            text = call["twiml"] = first_value(call["request"], "Twiml") or ""
        return read_response(text)
    except CallFailure as failure:
        return failure
    # A URL aiohttp cannot even request (a port beyond 65535: ValueError) fails like an
    # unreachable one.
    except (aiohttp.ClientError, TimeoutError, ValueError) as error:
        return ConnectionFailure(f"HTTP connection failure: {error!r}")


async def dial(session: aiohttp.ClientSession, call: Resource, auth_token: str) -> None:
    """Answer the call: play its TwiML (``answer_document``) and record what is heard.

    The call ends ``completed`` once answered, whatever its TwiML; ``no-answer`` when
    it stops ringing first (``rings_out``).
    """
    if call["status"] != "in-progress" and rings_out(call):
        finish(call, "no-answer")
        return
    pick_up(call)
    call["heard"], warnings = heard_in(await answer_document(session, call, auth_token))
    call["notifications"] = [*call.get("notifications", []), *warnings]
    for item in call["heard"]:
        log.info("call %s to %s: callee hears %s", call["sid"], mask(call["to"]), describe(item))
    finish(call, "completed")
