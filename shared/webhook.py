"""Reading a Twilio webhook: only what Twilio sends, for this account, signed.

Every webhook function (``twiml`` today; status callbacks and voice
webhooks tomorrow) reads its request through ``read_webhook``, which checks,
in order:

- the body: size-capped, and a form decoded strictly in its declared charset;
- the signature: Twilio signs the exact URL it called plus the sorted POST
  parameters with the account's auth token (``X-Twilio-Signature``); a JSON
  body is signed through the SHA-256 of its raw bytes (``bodySHA256`` in the
  URL). Behind a proxy, a custom domain or Azure's front ends the URL the app
  sees can differ from the one Twilio called, so the app's public origin
  (``shared.origin``) rebuilds it: that origin, the request's path and query;
- the shape: form-field names are Twilio's (ASCII letters and digits, with a
  ``Message[n]``-style index). Twilio's signature concatenates URL, names and
  values without separators, so a captured request can be re-cut to move part
  of the signed URL into a field name; such names are refused;
- the account: an ``AccountSid``, when the request carries one, is this app's.
"""

from __future__ import annotations

import hashlib
import re
from hmac import compare_digest
from urllib.parse import parse_qs, urlsplit

import azure.functions as func
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import ImmutableMultiDict, MultiDict

from shared.origin import app_origin
from shared.problems import bad_signature, webhook_refused
from shared.request_body import FORM, capped_body, form_fields, media_type
from shared.settings import Settings

TWILIO_FIELD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*(\[[0-9]{1,3}\])?")  # ASCII only
_NO_FORM: MultiDict[str, str] = ImmutableMultiDict()


def read_webhook(req: func.HttpRequest, settings: Settings) -> dict[str, str]:
    """Twilio's parameters (query, then form), once the request is proven Twilio's for us."""
    body = capped_body(req)
    form = form_fields(req) if req.method == "POST" and media_type(req) == FORM else _NO_FORM
    verify_signature(req, settings, body, form)
    if not all(TWILIO_FIELD_NAME.fullmatch(name) for name in form):
        raise webhook_refused("a form field's name is not one Twilio sends",
                              cause="field name outside Twilio's shape")
    params = dict(req.params)
    params.update(form.items())
    if "AccountSid" in params and params["AccountSid"] != settings.account_sid:
        raise webhook_refused("the request is for another Twilio account", field="AccountSid",
                              cause="AccountSid is another account's")
    return params


def verify_signature(req: func.HttpRequest, settings: Settings, body: bytes,
                     form: MultiDict[str, str]) -> None:
    """Raise 403 unless signature checks are off or the request carries a valid one."""
    if not settings.validate_signature:
        return
    signature = req.headers.get("X-Twilio-Signature")
    if not signature or not signature.isascii():  # compare_digest refuses non-ASCII text
        raise bad_signature()
    try:
        url = signed_url(req.url, settings)
        query = parse_qs(urlsplit(url).query)
    except ValueError:  # a malformed Host header: not a URL Twilio could have signed
        raise bad_signature() from None
    params: MultiDict[str, str] = form
    if "bodySHA256" in query:  # a JSON webhook: the body is signed through its hash
        hashes = query["bodySHA256"]
        actual = hashlib.sha256(body).hexdigest().encode()
        if len(hashes) != 1 or not compare_digest(actual, hashes[0].lower().encode()):
            raise bad_signature()
        params = _NO_FORM
    validator = RequestValidator(settings.auth_token)
    # Fast path: the URL as received, one HMAC. validate() then also tries the
    # URL with and without its default port (two HMACs), as Twilio's signing of
    # ports is inconsistent; it accepts a superset of this check.
    exact = compare_digest(validator.compute_signature(url, params), signature)
    if not exact and not validator.validate(url, params, signature):
        raise bad_signature()


def signed_url(request_url: str, settings: Settings) -> str:
    """The URL Twilio called: the request's path and query on the app's origin.

    Raises ``ValueError`` for a URL that cannot be parsed, and 500
    ``misconfigured`` when no origin is configured and the host is not loopback.
    """
    parts = urlsplit(request_url)
    origin = app_origin(parts, settings)
    query = f"?{parts.query}" if parts.query else ""
    return f"{origin}{parts.path}{query}"

