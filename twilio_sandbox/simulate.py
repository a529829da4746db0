"""Playing Twilio's part by hand: what the console's buttons and its HTTP API do.

An SMS arrives or a call comes in: the sandbox records it and sends the app's
``twiml`` the webhook Twilio would send, signed with the account's auth token,
and plays the answer (a ``<Message>`` reply is sent back to the texter, the
callee hears the ``<Say>``). A message or a call is pushed to a chosen status,
as the carrier would report it. And the console can play the mobile app too,
posting to ``send_sms``/``make_call`` as the printed curls do, and ask the local
host to clear the app's rate limits.
"""

from __future__ import annotations

import json
import re
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

import yarl

from . import call_flow, geo, keywords, resources
from . import media as inbound_media
from .app_link import CONTROL_HEADER
from .callbacks import read_response, signed_request
from .errors import ActionError
from .overrides import split
from .resources import Resource

if TYPE_CHECKING:
    from .state import SandboxState
    from .webhook_log import WebhookRecord

MESSAGE_STATUSES = ("queued", "sending", "sent", "delivered", "undelivered", "failed", "read",
                    "canceled")
CALL_STATUSES = ("queued", "ringing", "in-progress", "completed", "busy", "no-answer", "failed",
                 "canceled")
#: Twilio's delivery errors (https://www.twilio.com/docs/errors/<code>), for undelivered/failed.
DELIVERY_ERRORS = {
    30001: "Queue overflow",
    30002: "Account suspended",
    30003: "Unreachable destination handset",
    30004: "Message blocked",
    30005: "Unknown destination handset",
    30006: "Landline or unreachable carrier",
    30007: "Message filtered",
    30008: "Unknown error",
}
DEFAULT_ERROR = {"undelivered": 30003, "failed": 30008}
TERMINAL_CALL = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
#: The app's functions the console talks to: twiml as Twilio, the others as the mobile app.
APP_FUNCTIONS = ("twiml", "send_sms", "make_call")
DRIVEN = ("send_sms", "make_call")
#: The local host's own URL that clears the app's rate-limit counters (none on Azure).
RESET_LIMITS = "reset_limits"
MAX_BODY = 1600
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")


def phone_number(value: Any, name: str) -> str:
    if not isinstance(value, str) or not _E164.fullmatch(value):
        raise ActionError(400, "Invalid field", f"'{name}' must be an E.164 number (+14155550100)")
    return value


def _webhook_url(sandbox: SandboxState, data: dict[str, Any]) -> str:
    """The ``url`` given (an http(s) URL), else the app's twiml."""
    url = data.get("url")
    if url is None or url == "":
        return sandbox.app.url("twiml")
    if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
        raise ActionError(400, "Invalid field", "'url' must be an http(s) URL")
    return url


def _account(sandbox: SandboxState) -> tuple[str, str]:
    """The account the simulated traffic belongs to: the sandbox's first."""
    return next(iter(sandbox.accounts.items()))


# --- an SMS arrives --------------------------------------------------------------


def inbound_params(message: Resource, media: list[tuple[str, str]]) -> dict[str, str]:
    """The parameters of Twilio's incoming-message webhook
    (https://www.twilio.com/docs/messaging/guides/webhook-request): the message, its
    Messaging Service when the number is in one, where both numbers are (geo.py)."""
    service = message.get("messaging_service_sid")
    params = {
        "MessageSid": message["sid"], "SmsSid": message["sid"], "SmsMessageSid": message["sid"],
        "AccountSid": message["account_sid"], "From": message["from"], "To": message["to"],
        "Body": message["body"], "NumMedia": str(len(media)),
        "NumSegments": message["num_segments"], "SmsStatus": "received",
        "ApiVersion": resources.API_VERSION,
        **({"MessagingServiceSid": service} if service else {}),
        **geo.location("From", message["from"]), **geo.location("To", message["to"]),
    }
    for index, (url, kind) in enumerate(media):
        params[f"MediaUrl{index}"] = url
        params[f"MediaContentType{index}"] = kind
    return params


def parse_replies(text: str) -> list[dict[str, Any]]:
    """The ``<Message>`` verbs of a messaging TwiML answer: body, media, to and from.

    Raises TwimlError (a ValueError) when the answer is not a TwiML document.
    """
    root = read_response(text)
    replies = []
    for verb in root.iter("Message"):
        body = verb.find("Body")
        text = "".join(body.itertext()) if body is not None else (verb.text or "")
        replies.append({
            "body": " ".join(text.split()),
            "media": [(m.text or "").strip() for m in verb.iter("Media")],
            "to": verb.get("to"), "from": verb.get("from"),
        })
    return replies


async def inbound_sms(sandbox: SandboxState, data: dict[str, Any]) -> dict[str, Any]:
    """An SMS from ``from`` to ``to`` reaches the app's twiml; its replies are sent back."""
    sender = phone_number(data.get("from"), "from")
    to = phone_number(data.get("to") or sandbox.default_number, "to")
    body = data.get("body", "")
    uploads, media_urls = inbound_media.read_uploads(data)
    if not isinstance(body, str) or len(body) > MAX_BODY:
        raise ActionError(400, "Invalid field", f"'body' must be text of at most {MAX_BODY} chars")
    if not body and not uploads and not media_urls:
        raise ActionError(400, "Invalid field", "give a 'body', 'media' or 'media_url'")
    url = _webhook_url(sandbox, data)
    account_sid, token = _account(sandbox)
    supplied = await inbound_media.fetch_all(media_urls, uploads)
    form = {"From": sender, "To": to, "Body": body}
    message = resources.build_message(account_sid, form, [], {**form, "MediaUrl": []})
    media = _keep_media(sandbox, message, supplied)
    service = sandbox.service_of(to)  # the number receives as its Messaging Service
    message.update(direction="inbound", status="received", date_sent=message["date_created"],
                   messaging_service_sid=service.sid if service else None)
    message = sandbox.record_message(message)
    keyword = service.keyword_of(body) if service else keywords.keyword_of(body)
    if keyword in ("opt-out", "opt-in"):
        sandbox.opt_out(to, sender, keyword == "opt-out")
    params = inbound_params(message, media)
    if service is not None and (opt_out_type := service.opt_out_type(keyword)):
        params["OptOutType"] = opt_out_type  # Advanced Opt-Out: Twilio has answered it
    signed_url, form_body, headers = signed_request(url, "POST", params, token)
    webhook = await sandbox.webhooks.send(
        sandbox.session, "POST", yarl.URL(signed_url, encoded=True), headers=headers,
        data=form_body, kind="inbound-sms", sid=message["sid"], overrides=split(url)[1])
    outcome: dict[str, Any] = {"message": message, "webhook": webhook, "replies": []}
    if keyword is not None:  # Twilio answers its keywords itself, whatever the app says
        form = {"From": to, "To": sender, "Body": keywords.REPLIES[keyword]}
        answered = resources.build_message(account_sid, form, [], {**form, "MediaUrl": []})
        answered["direction"] = "outbound-reply"
        outcome["replies"].append(sandbox.record_message(answered))
    answer = webhook["answer"]
    if answer is None or not 200 <= answer["status"] < 300:
        outcome["error"] = "11200 HTTP retrieval failure: the app did not answer 2xx"
        return outcome
    try:
        replies = parse_replies(webhook.answer_text)
    except ValueError as exc:
        outcome["error"] = str(exc)
        return outcome
    for reply in replies:
        form = {"From": reply["from"] or to, "To": reply["to"] or sender, "Body": reply["body"]}
        if sandbox.is_opted_out(form["From"], form["To"]):
            outcome["error"] = "21610 Attempt to send to unsubscribed recipient: reply dropped"
            continue
        created = resources.build_message(account_sid, form, reply["media"],
                                          {**form, "MediaUrl": reply["media"]})
        created["direction"] = "outbound-reply"
        outcome["replies"].append(sandbox.record_message(created))
    return outcome


def _keep_media(sandbox: SandboxState, message: Resource,
                supplied: list[inbound_media.Upload]) -> list[tuple[str, str]]:
    """Keep the texter's files as Twilio keeps them, Media resources of an ``MM`` message at
    URLs of the sandbox's own (media.py); their ``MediaUrl`` and ``MediaContentType``."""
    if not supplied:
        return []
    resources.with_media_sid(message)
    kept = sandbox.media.keep(message["account_sid"], message["sid"], supplied)
    media = [(sandbox.base_url + resources.media_path(m.account_sid, m.message_sid, m.sid),
              m.content_type) for m in kept]
    message["num_media"] = str(len(media))
    message["request"]["MediaUrl"] = [url for url, _ in media]
    return media


# --- a call comes in -------------------------------------------------------------


async def inbound_call(sandbox: SandboxState, data: dict[str, Any]) -> dict[str, Any]:
    """A call from ``from`` to ``to`` rings the app: its twiml is fetched, signed, and
    followed to the end (call_flow.py), the parties doing what ``data`` says
    (``answer``, ``hold_seconds``, ``message``, ``transcript``: ``Parties.from_json``).

    Twilio asks the number's voice URL while the call rings, with the incoming-call
    parameters and where both numbers are
    (https://www.twilio.com/docs/voice/twiml#request-parameters)."""
    caller = phone_number(data.get("from"), "from")
    to = phone_number(data.get("to") or sandbox.default_number, "to")
    url = _webhook_url(sandbox, data)
    parties = call_flow.Parties.from_json(data)
    account_sid, _ = _account(sandbox)
    form = {"From": caller, "To": to, "Url": url, "Method": "POST"}
    call = resources.build_call(account_sid, form, dict(form))
    call.update(direction="inbound", status="ringing")
    call = await call_flow.run(sandbox, call, parties, {
        **geo.location("From", caller), **geo.location("To", to)})
    sent = [w for w in sandbox.webhooks.records if w["sid"] == call["sid"]]
    first = next((w for w in sent if w["kind"] == "twiml"), None)
    kept = (sandbox.recordings.find(item["sid"]) for item in call["recordings"])
    return {"call": call, "webhook": first, "webhooks": sent,
            "recordings": [r.resource(sandbox.base_url) for r in kept if r is not None]}


# --- pushed to a status ----------------------------------------------------------


def push_status(sandbox: SandboxState, sid: str, data: dict[str, Any]) -> Resource:
    """Move a message or a call to ``status`` (with ``error_code`` for a failed message)."""
    status, code = data.get("status"), data.get("error_code")
    is_call = sid.startswith("CA")
    found = next((item for item in (sandbox.calls if is_call else sandbox.messages)
                  if item["sid"] == sid), None)
    if found is None:
        raise ActionError(404, "Not found", f"no message or call {sid} in the sandbox's history")
    allowed = CALL_STATUSES if is_call else MESSAGE_STATUSES
    if status not in allowed:
        raise ActionError(400, "Invalid field", f"'status' must be one of {', '.join(allowed)}")
    now = resources.rfc2822(resources.now())
    if is_call:
        if code is not None:
            raise ActionError(400, "Invalid field", "'error_code' applies to messages only")
        changes: dict[str, Any] = {"status": status, "date_updated": now}
        if status == "in-progress" and not found.get("start_time"):
            changes["start_time"] = now
        if status in TERMINAL_CALL:  # only a call that connected has lasted (busy: 0)
            connected = status == "completed"
            changes.update(end_time=now, duration=str(
                _seconds_since(found.get("start_time")) if connected else 0))
        found.update(changes)
        return found
    if status in DEFAULT_ERROR:
        code = DEFAULT_ERROR[status] if code is None else code
        if isinstance(code, bool) or code not in DELIVERY_ERRORS:
            raise ActionError(400, "Invalid field",
                              f"'error_code' must be one of {', '.join(map(str, DELIVERY_ERRORS))}")
    elif code is not None:
        raise ActionError(400, "Invalid field", "'error_code' goes with undelivered or failed")
    found.update(status=status, date_updated=now, error_code=code,
                 error_message=DELIVERY_ERRORS.get(code) if code else None,
                 **({"date_sent": found.get("date_sent") or now}
                    if status in ("sent", "delivered", "read") else {}))
    return found


def _seconds_since(start: str | None) -> int:
    if not start:
        return 0
    return max(int((resources.now() - parsedate_to_datetime(start)).total_seconds()), 0)


# --- the mobile app's part, and the local host's ------------------------------------


async def app_request(sandbox: SandboxState, function: str, data: Any) -> WebhookRecord:
    """Post ``data`` (JSON) to the app's ``send_sms`` or ``make_call``, as the mobile app does."""
    if function not in DRIVEN:
        raise ActionError(404, "Not found", f"the console drives {' and '.join(DRIVEN)}")
    record = await _post_json(sandbox, function, data, kind="app")
    try:
        sid = json.loads(record.answer_text).get("sid")
    except (ValueError, AttributeError):
        sid = None
    if isinstance(sid, str):
        record["sid"] = sid
    return record


async def reset_limits(sandbox: SandboxState) -> WebhookRecord:
    """Ask the local Functions host to clear the app's rate-limit counters (``POST {}`` to
    its ``reset_limits`` URL with the run's control token, both of which it gives when it
    runs the sandbox; 409 until then)."""
    token = sandbox.app.control_token
    return await _post_json(sandbox, RESET_LIMITS, {}, kind="local",
                            extra={CONTROL_HEADER: token} if token else {})


async def _post_json(sandbox: SandboxState, function: str, data: Any, *,
                     kind: str, extra: dict[str, str] | None = None) -> WebhookRecord:
    """POST ``data`` as JSON to one of the app's URLs, with its key if it has one (and
    ``extra`` headers); logged."""
    headers = {"Content-Type": "application/json", **(extra or {})}
    if sandbox.app.key:
        headers["x-functions-key"] = sandbox.app.key
    return await sandbox.webhooks.send(
        sandbox.session, "POST", sandbox.app.url(function), headers=headers,
        data=json.dumps(data).encode(), kind=kind, sid=None)
