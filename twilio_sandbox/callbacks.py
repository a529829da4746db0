"""What Twilio does once a call is queued: fetch the call's TwiML, signed, and "play" it.

The request matches Twilio's (form parameters, ``X-Twilio-Signature`` computed with
the account's auth token, ``TwilioProxy`` user agent), so the app's webhook,
signature check included, is exercised end to end. The answer is parsed as TwiML
and what the callee would hear is recorded on the call and logged.
"""

import logging
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import urlencode

import aiohttp
import yarl
from twilio.request_validator import RequestValidator

from .masking import mask
from .overrides import Attempt, NotSent, split
from .resources import API_VERSION, Resource, now, rfc2822

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
    """The answer cannot be played: not XML, or not a ``<Response>`` document."""

    code = 12100  # Document parse failure


def read_response(text: str) -> ET.Element:
    """The ``<Response>`` element of a TwiML document (voice or messaging), or TwimlError."""
    try:
        # The document comes from the app under test on this machine, not from a
        # stranger, and expat resolves no external entities.
        root = ET.fromstring(text)  # noqa: S314
    except ET.ParseError as exc:
        raise TwimlError(f"Document parse failure: not XML: {exc}") from None
    if root.tag != "Response":
        raise TwimlError(f"Document parse failure: root is <{root.tag}>, not <Response>")
    return root


def parse_twiml(text: str) -> list[Heard]:
    """What the callee hears, in document order.

    ``Say`` gives its text (whitespace collapsed), ``voice`` and ``language``;
    ``Play`` its URL; any other verb just its name. ``Gather`` is entered, since the
    prompts nested in it are heard too.
    """
    heard: list[Heard] = []
    _walk(read_response(text), heard)
    return heard


def _walk(parent: ET.Element, heard: list[Heard]) -> None:
    for element in parent:
        if element.tag == "Say":
            heard.append(
                {
                    "verb": "Say",
                    "text": " ".join("".join(element.itertext()).split()),
                    "voice": element.get("voice"),
                    "language": element.get("language"),
                }
            )
        elif element.tag == "Play":
            heard.append({"verb": "Play", "url": (element.text or "").strip()})
        else:
            heard.append({"verb": str(element.tag)})
            if element.tag == "Gather":
                _walk(element, heard)


def describe(item: Heard) -> str:
    """One log line's worth of what the callee hears."""
    if item["verb"] == "Say":
        voice = ", ".join(f"{key}={item[key]}" for key in ("voice", "language") if item[key])
        return f"Say{f' ({voice})' if voice else ''}: {item['text']}"
    if item["verb"] == "Play":
        return f"Play {item['url']}"
    return f"<{item['verb']}>"


def _one(request: dict[str, Any], key: str) -> str | None:
    value = request.get(key)
    if isinstance(value, list):
        value = value[0] if value else None
    return value or None


def call_params(call: Resource) -> dict[str, str]:
    """The parameters Twilio sends when it asks for an answered call's TwiML (either way)."""
    return {
        "CallSid": call["sid"],
        "AccountSid": call["account_sid"],
        "From": call["from"],
        "To": call["to"],
        "CallStatus": "in-progress",
        "Direction": call["direction"],
        "ApiVersion": API_VERSION,
    }


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
    stamp = rfc2822(now())
    call.update(status=status, error=error, end_time=stamp, date_updated=stamp, duration="0")
    if error:
        log.warning("call %s %s: %s", call["sid"], status, error)
    else:
        log.info("call %s %s", call["sid"], status)


async def fetch_twiml(session: aiohttp.ClientSession, call: Resource, auth_token: str,
                      params: dict[str, str] | None = None) -> str:
    """Fetch the call's Url (with ``params`` over the usual ones), retried as its connection
    overrides say; record the answer on the call; raise unless it is 2xx."""
    request = call["request"]
    method = (_one(request, "Method") or "POST").upper()
    target, overrides = split(_one(request, "Url") or "")
    url, body, headers = signed_request(
        target, method, {**call_params(call), **(params or {})}, auth_token
    )

    async def attempt(current: Attempt) -> None:
        # Fetch the URL exactly as signed, as Twilio does: a plain string would be
        # re-quoted by yarl (%21 -> !) and no longer match its signature.
        async with session.request(method, yarl.URL(url, encoded=True), data=body,
                                   headers=headers, timeout=current.timeout) as answer:
            current.status = call["twiml_status"] = answer.status
            call["twiml"] = await answer.text()

    try:
        await overrides.send(attempt)
    except NotSent as error:
        raise NotFetched(error.detail) from None
    if not 200 <= call["twiml_status"] < 300:
        raise CallFailure(
            f"HTTP retrieval failure: {method} {url} answered {call['twiml_status']}")
    return call["twiml"]


async def dial(session: aiohttp.ClientSession, call: Resource, auth_token: str) -> None:
    """Answer the call: get its TwiML (its Url, else its inline Twiml) and record what is heard.

    The call ends ``completed``, or ``failed`` with an ``error`` note when the TwiML
    cannot be fetched or played.
    """
    stamp = rfc2822(now())
    call.update(status="in-progress", start_time=stamp, date_updated=stamp)
    try:
        if _one(call["request"], "Url"):
            text = await fetch_twiml(session, call, auth_token)
        else:
            text = call["twiml"] = _one(call["request"], "Twiml") or ""
        call["heard"] = parse_twiml(text)
    except CallFailure as exc:
        finish(call, "failed", str(exc))
        return
    except (aiohttp.ClientError, TimeoutError) as exc:
        finish(call, "failed", f"11205 HTTP connection failure: {exc!r}")
        return
    for item in call["heard"]:
        log.info("call %s to %s: callee hears %s", call["sid"], mask(call["to"]), describe(item))
    finish(call, "completed")
