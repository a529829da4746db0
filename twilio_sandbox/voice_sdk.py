"""The Voice SDK's side of Twilio: access tokens checked as Twilio checks them, the TwiML
Apps they name, and calls an app places with one.

``POST /_sandbox/client_calls`` plays the mobile app's SDK: ``{token, to, params?}``.
The token is verified (HS256 over the API key's secret, ``cty: twilio-fpa;v=1``,
issuer an API key of the account it names as subject, not expired, at most 24
hours long, a voice grant whose TwiML App the sandbox knows) and refused with
Twilio's error code otherwise. Then the TwiML App's Voice URL is fetched, signed
with the account's auth token, and its TwiML followed to its end (call_flow.py:
``Say``, ``Play``, ``Pause``, ``Dial`` with ``Number``/``Client`` and its
``action``, ``Record``, ``Hangup``, ``Reject``; the dialed party answers unless
``answer`` says ``decline`` or ``no-answer``). What happened is recorded on the
call, step by step ("dialed +1415•••2671 with caller ID +1500•••0006"), and the
TwiML App's status callback hears ``completed``.

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

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jwt

from . import call_flow, resources
from .call_flow import INVALID_CLIENT_NAME, client_name_problem, shown
from .errors import ActionError
from .resources import Resource
from .simulate import phone_number

if TYPE_CHECKING:
    from .state import SandboxState

#: Twilio refuses tokens valid for more than 24 hours.
MAX_TTL = 86400
CONTENT_TYPE = "twilio-fpa;v=1"
MAX_PARAMS = 20
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
    return await _run(sandbox, call, params, data)


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
                                                "CallStatus": "ringing", "Called": to}, data)}


async def _run(sandbox: SandboxState, call: Resource, params: dict[str, str],
               data: dict[str, Any]) -> Resource:
    return await call_flow.run(sandbox, call, call_flow.Parties.from_json(data), params)


__all__ = ["INVALID_CLIENT_NAME", "Grant", "TokenRefused", "client_call", "client_name_problem",
           "inbound_call", "shown", "verify_token"]
