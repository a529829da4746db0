"""Reading a Twilio webhook: size cap, signature check, parameters.

Twilio signs the exact URL it called plus the sorted POST parameters with
the account's auth token (``X-Twilio-Signature``). Behind a proxy, a custom
domain or Azure's front ends the URL the app sees can differ from the one
Twilio called, so the app's public origin (``PUBLIC_BASE_URL``, else Azure's
``WEBSITE_HOSTNAME``) rebuilds it: that origin, the request's path and its
original query.
"""

from __future__ import annotations

from hmac import compare_digest
from typing import Any
from urllib.parse import parse_qs, urlsplit

import azure.functions as func
from twilio.request_validator import RequestValidator

from shared.problems import bad_signature
from shared.request_body import FORM, capped_body, media_type
from shared.settings import Settings


def read_webhook(req: func.HttpRequest, settings: Settings) -> dict[str, str]:
    """Twilio's parameters (query and form), once the request is proven to be Twilio's."""
    capped_body(req)
    verify_signature(req, settings)
    params = dict(req.params)
    if req.method == "POST" and media_type(req) == FORM:
        params.update(req.form.items())
    return params


def verify_signature(req: func.HttpRequest, settings: Settings) -> None:
    """Raise 403 unless signature checks are off or the request carries a valid one."""
    if not settings.validate_signature:
        return
    signature = req.headers.get("X-Twilio-Signature")
    if not signature or not signature.isascii():  # compare_digest refuses non-ASCII text
        raise bad_signature()
    try:
        url = signed_url(req.url, settings.public_origin)
        query = parse_qs(urlsplit(url).query)
    except ValueError:  # a malformed Host header: not a URL Twilio could have signed
        raise bad_signature() from None
    params: Any = req.form if req.method == "POST" and media_type(req) == FORM else {}
    if "bodySHA256" in query:  # a JSON webhook: the body is signed through its hash
        params = req.get_body().decode("utf-8", errors="replace")
    validator = RequestValidator(settings.auth_token)
    # Fast path: the URL as received, one HMAC. validate() then also tries the
    # URL with and without its default port (two HMACs), as Twilio's signing of
    # ports is inconsistent; it accepts a superset of this check.
    exact = not isinstance(params, str) and compare_digest(
        validator.compute_signature(url, params), signature)
    if not exact and not validator.validate(url, params, signature):
        raise bad_signature()


def signed_url(request_url: str, public_origin: str | None) -> str:
    """The URL Twilio called: the request's path and query on the public origin.

    Without a public origin (the local host, off Azure) the request's own URL.
    """
    if not public_origin:
        return request_url
    parts = urlsplit(request_url)
    query = f"?{parts.query}" if parts.query else ""
    return f"{public_origin}{parts.path}{query}"
