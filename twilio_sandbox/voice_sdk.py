"""The Voice SDK's side of Twilio: access tokens checked as Twilio checks them, the TwiML
Apps they name, and calls an app places with one.

``POST /_sandbox/client_calls`` plays the mobile app's SDK: ``{token, to, params?}``.
The token is verified (HS256 over the API key's secret, ``cty: twilio-fpa;v=1``,
issuer an API key of the account it names as subject, not expired, at most 24
hours long, a voice grant whose TwiML App the sandbox knows) and refused with
Twilio's error code otherwise. Then the TwiML App's Voice URL is fetched, signed
with the account's auth token, and its TwiML executed: ``Say``, ``Play``,
``Pause``, ``Dial`` with ``Number``/``Client``, ``Hangup``, ``Reject``. What
happened is recorded on the call, step by step ("dialed +1415•••2671 with caller
ID +1500•••0006"), and the TwiML App's status callback hears ``completed``.

A ``<Number>`` or ``<Client>`` with a ``statusCallback`` is dialed as its own call
(a leg: ``outbound-dial``, its ``ParentCallSid`` the SDK call's), which reports to
that URL the events its ``statusCallbackEvent`` names, as Twilio does: the one
way an app hears a Voice SDK call answered
(https://www.twilio.com/docs/voice/twiml/number#attributes-status-callback-event).

A token's identity follows the rules of error 31105, and a ``<Number>`` is dialed
only with a caller ID Twilio accepts (13214); a ``<Say>`` Twilio would not say is
not said (13511). What Twilio would log goes to the call's ``notifications``.
"""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

import aiohttp
import jwt

from . import resources
from .callbacks import answer_document, finish, pick_up
from .errors import ActionError, TwilioApiError
from .magic import ACCOUNT_NUMBERS
from .resources import Resource
from .say import say_warning
from .simulate import phone_number

if TYPE_CHECKING:
    from .state import SandboxState

#: Twilio refuses tokens valid for more than 24 hours.
MAX_TTL = 86400
CONTENT_TYPE = "twilio-fpa;v=1"
MAX_PARAMS = 20
#: "Client name should not contain control, space, delims, or unwise characters and
#: should not be longer than 256 characters" (https://www.twilio.com/docs/api/errors/31105):
#: RFC 2396's excluded US-ASCII characters (section 2.4.3).
INVALID_CLIENT_NAME = 31105
MAX_IDENTITY = 256
_EXCLUDED = re.compile(r'[\x00-\x20\x7f<>#%"{}|\\^\[\]`]')
#: "callerId must be the calling number, called number, or a validated outgoing number
#: ... if the calling leg is a client leg, the caller ID is required and must be a
#: validated outgoing number" (https://www.twilio.com/docs/api/errors/13214).
INVALID_CALLER_ID = 13214


@dataclass(frozen=True)
class Grant:
    """What a verified token lets its holder do."""

    account_sid: str
    identity: str
    application_sid: str


class TokenRefused(ActionError):
    """A token Twilio would refuse, with its error code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(401, "Access token refused", f"{code} {message}")
        self.code: int | None = code


def verify_token(sandbox: SandboxState, token: Any, now: float | None = None) -> Grant:
    """The token's grant, or ``TokenRefused`` with the code Twilio would answer."""
    if not isinstance(token, str) or not token:
        raise TokenRefused(20101, "Invalid Access Token")
    try:
        header = jwt.get_unverified_header(token)
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        raise TokenRefused(20101, "Invalid Access Token") from None
    if header.get("alg") != "HS256" or header.get("cty") != CONTENT_TYPE:
        raise TokenRefused(20102, "Invalid Access Token header")
    key = sandbox.api_keys.get(unverified.get("iss"))  # type: ignore[arg-type]
    if key is None or key[1] != unverified.get("sub"):
        raise TokenRefused(20103, "Invalid Access Token issuer/subject")
    secret, account_sid = key
    moment = time.time() if now is None else now
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"],
                            options={"require": ["exp"], "verify_exp": False,
                                     "verify_nbf": False})
    except jwt.InvalidSignatureError:
        raise TokenRefused(20107, "Invalid Access Token signature") from None
    except jwt.InvalidTokenError:
        raise TokenRefused(20101, "Invalid Access Token") from None
    expires, starts = claims["exp"], claims.get("nbf", claims.get("iat", moment))
    if not isinstance(expires, int) or expires <= moment:
        raise TokenRefused(20104, "Access Token expired or expiration date invalid")
    if isinstance(starts, int) and starts > moment:
        raise TokenRefused(20105, "Access Token not yet valid")
    if expires - (starts if isinstance(starts, int) else moment) > MAX_TTL:
        raise TokenRefused(20157, "Expiration Time Exceeds Maximum Time Allowed")
    grants = claims.get("grants")
    voice = grants.get("voice") if isinstance(grants, dict) else None
    outgoing = voice.get("outgoing") if isinstance(voice, dict) else None
    identity = grants.get("identity") if isinstance(grants, dict) else None
    app_sid = outgoing.get("application_sid") if isinstance(outgoing, dict) else None
    if not isinstance(identity, str) or not identity or not isinstance(app_sid, str):
        raise TokenRefused(20106, "Invalid Access Token grants")
    problem = client_name_problem(identity)
    if problem is not None:
        raise TokenRefused(INVALID_CLIENT_NAME, problem)
    app = sandbox.twiml_apps.get(app_sid)
    if app is None or app.account_sid != account_sid:
        raise TokenRefused(21218, f"Invalid ApplicationSid {app_sid}")
    return Grant(account_sid, identity, app_sid)


def client_name_problem(identity: str) -> str | None:
    """Why Twilio refuses ``identity`` as a client name (31105), or None."""
    if not identity or len(identity) > MAX_IDENTITY:
        return f"Invalid client name: 1 to {MAX_IDENTITY} characters, not {len(identity)}"
    bad = _EXCLUDED.search(identity)
    if bad:
        return f"Invalid client name: it contains {bad.group()!r}"
    return None


def shown(number: str | None) -> str:
    """A number as the sandbox's records show it: ``+14155552671`` -> ``+1415•••2671``."""
    if not number or not number.startswith("+") or len(number) < 10:
        return number or "(none)"
    return f"{number[:5]}•••{number[-4:]}"


def _custom_params(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > MAX_PARAMS or not all(
            isinstance(k, str) and k.isascii() and k.isalnum() and isinstance(v, str)
            for k, v in value.items()):
        raise ActionError(400, "Invalid field", f"'params' takes up to {MAX_PARAMS} "
                          "string values under ASCII letter-and-digit names")
    return value


async def client_call(sandbox: SandboxState, data: dict[str, Any]) -> Resource:
    """The SDK places a call with ``token`` to ``to``: the whole call, once it ended."""
    grant = verify_token(sandbox, data.get("token"))
    to = data.get("to")
    if not isinstance(to, str) or not to or len(to) > 160:
        raise ActionError(400, "Invalid field", "'to' must be a phone number or client:<identity>")
    app = sandbox.twiml_apps[grant.application_sid]
    caller = f"client:{grant.identity}"
    form = {"From": caller, "To": to, "Url": app.voice_url, "Method": "POST"}
    if app.status_callback:
        form["StatusCallback"] = app.status_callback  # a TwiML App reports completed only
    call = resources.build_call(grant.account_sid, form, dict(form))
    call.update(direction="inbound", status="ringing", application_sid=app.sid)
    params = {"ApplicationSid": app.sid, "Caller": caller, "Called": "", "CallStatus": "ringing",
              **_custom_params(data.get("params")), "From": caller, "To": to}
    return await _run(sandbox, call, params)


async def inbound_call(sandbox: SandboxState, data: dict[str, Any]) -> dict[str, Any]:
    """A call from a phone (``from``) to a Twilio number (``to``, default the sandbox's)
    whose voice configuration is the TwiML App ``application_sid``."""
    caller = phone_number(data.get("from"), "from")
    to = phone_number(data.get("to") or sandbox.default_number, "to")
    sid = data.get("application_sid")
    if not isinstance(sid, str):
        raise ActionError(400, "Invalid field", "'application_sid' must be a TwiML App's sid")
    app = sandbox.twiml_apps.get(sid)
    if app is None:
        raise ActionError(404, "Not found", "'application_sid' is no TwiML App of the sandbox")
    form = {"From": caller, "To": to, "Url": app.voice_url, "Method": "POST"}
    call = resources.build_call(app.account_sid, form, dict(form))
    call.update(direction="inbound", status="ringing", application_sid=app.sid)
    return {"call": await _run(sandbox, call, {"ApplicationSid": app.sid, "Caller": caller,
                                                "CallStatus": "ringing", "Called": to})}


async def _run(sandbox: SandboxState, call: Resource, params: dict[str, str]) -> Resource:
    async def play(session: aiohttp.ClientSession, record: Resource, auth_token: str) -> None:
        await execute(session, record, auth_token, params, account_numbers(sandbox))
        for dialed in record["dialed"]:  # the call waits on <Dial> until its legs end
            if dialed.get("status_callback"):
                await _dial_leg(sandbox, record, dialed)

    record = sandbox.record_call(call, play=play)
    await sandbox.wait_for_twiml(record["sid"], timeout=30)
    return record


async def _dial_leg(sandbox: SandboxState, parent: Resource, dialed: dict[str, Any]) -> None:
    """The call ``<Dial>`` places to one noun, reporting to its statusCallback (Twilio's
    child call: https://www.twilio.com/docs/voice/twiml/dial#dial-child-call-status)."""
    form = {"From": dialed["caller_id"] or parent["from"], "To": dialed["to"],
            "StatusCallback": dialed["status_callback"]}
    # The TwiML attribute lists its events space-separated; the leg, like a REST call,
    # holds one a value.
    leg = resources.build_call(parent["account_sid"], form,
                               {**form, "StatusCallbackEvent": dialed["events"].split()})
    leg.update(direction="outbound-dial", parent_call_sid=parent["sid"])
    leg = sandbox.record_call(leg)
    await sandbox.wait_for_twiml(leg["sid"], timeout=30)


async def execute(session: aiohttp.ClientSession, call: Resource, auth_token: str,
                  params: dict[str, str],
                  owns: Callable[[str], bool] = ACCOUNT_NUMBERS.__contains__) -> None:
    """Fetch the call's TwiML, signed, and carry out its verbs, recording each step.

    TwiML that cannot be had is Twilio's error message instead (``answer_document``).
    ``owns``: whether a number is the account's, a caller ID a ``<Dial>`` may use."""
    pick_up(call)
    root = await answer_document(session, call, auth_token, params)
    if call["error"]:
        _step(call, f"TwiML failed: {call['error']}")
    for verb in root:
        if not _carry_out(call, verb, owns):
            break
    finish(call, "busy" if call["status"] == "busy" else "completed")


def _one_value(call: Resource, name: str) -> str:
    value = call["request"].get(name) or ""
    return value[0] if isinstance(value, list) else value


def _step(call: Resource, text: str) -> None:
    call["actions"] = [*call["actions"], text]


def _notify(call: Resource, text: str) -> None:
    """What Twilio's debugger would log for the call; the call goes on."""
    call["notifications"] = [*call["notifications"], text]
    _step(call, text)


def _carry_out(call: Resource, verb: ET.Element, owns: Callable[[str], bool]) -> bool:
    """Record one verb's effect; False when the call ends with it."""
    text = " ".join("".join(verb.itertext()).split())
    if verb.tag == "Say":
        warning = say_warning(verb.get("voice"), verb.get("language"))
        if warning is not None:
            _notify(call, f"not said: {warning}")
        else:
            _step(call, f"said: {text}")
    elif verb.tag == "Play":
        _step(call, f"played {text}")
    elif verb.tag == "Pause":
        _step(call, f"paused {verb.get('length', '1')} s")
    elif verb.tag == "Hangup":
        _step(call, "hung up")
        return False
    elif verb.tag == "Reject":
        _step(call, f"rejected ({verb.get('reason', 'rejected')})")
        call["status"] = "busy"
        return False
    elif verb.tag == "Dial":
        _dial(call, verb, text, owns)
    else:
        _step(call, f"ignored <{verb.tag}>: not a verb the sandbox plays")
    return True


def _dial(call: Resource, verb: ET.Element, text: str, owns: Callable[[str], bool]) -> None:
    caller_id = verb.get("callerId")
    nouns: list[tuple[str, str, dict[str, str]]] = [
        (child.tag, " ".join("".join(child.itertext()).split()), dict(child.attrib))
        for child in verb]
    if not nouns and text:  # <Dial>+14155552671</Dial>: a number with no attributes
        nouns = [("Number", text, {})]
    for kind, target, noun in nouns:
        if kind == "Number":
            refused = _caller_id_problem(call, caller_id, owns)
            if refused is not None:
                _notify(call, f"not dialed {shown(target)}: {INVALID_CALLER_ID} {refused}")
                continue
            _step(call, f"dialed {shown(target)} with caller ID {shown(caller_id)}")
        elif kind == "Client":
            problem = client_name_problem(target)
            if problem is not None:
                _notify(call, f"not rung: {INVALID_CLIENT_NAME} {problem}")
                continue
            _step(call, f"rang client {target}")
        else:
            _step(call, f"ignored <Dial><{kind}>")
            continue
        dialed: dict[str, Any] = {"kind": kind.lower(), "to": target, "caller_id": caller_id}
        if noun.get("statusCallback"):  # relative to the document's URL, as Twilio reads it
            dialed.update(status_callback=urljoin(_one_value(call, "Url"), noun.get(
                "statusCallback", "")), events=noun.get("statusCallbackEvent") or "completed")
        call["dialed"] = [*call["dialed"], dialed]


def account_numbers(sandbox: SandboxState) -> Callable[[str], bool]:
    """Whether a number is the account's ("a validated outgoing number"): the magic valid
    sender and the number the sandbox is configured with (``default_number``), and in
    ``live-like`` mode any number its check takes as a call's ``From``."""
    own = ACCOUNT_NUMBERS | {sandbox.default_number}

    def owns(number: str) -> bool:
        if number in own:
            return True
        if not number.startswith("+"):
            return False
        try:
            sandbox.check_numbers("call", number, number, None)
        except TwilioApiError:
            return False
        return True

    return owns


def _caller_id_problem(call: Resource, caller_id: str | None,
                       owns: Callable[[str], bool]) -> str | None:
    """Why Twilio would not dial a number with ``caller_id`` on this call (13214), or None."""
    if call["from"].startswith("client:"):
        if caller_id is None:
            return "Dial: a caller ID is required when the calling leg is a client"
        return None if owns(caller_id) else (
            f"Dial: invalid callerId {shown(caller_id)}: a client leg needs a number of the "
            "account")
    if caller_id is None or caller_id in (call["from"], call["to"]) or owns(caller_id):
        return None
    return (f"Dial: invalid callerId {shown(caller_id)}: not the calling or called number, "
            "nor one of the account")
