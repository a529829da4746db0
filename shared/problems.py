"""RFC 9457 problem details: the one shape of every refusal the app answers.

A refusal is raised as ``Problem`` anywhere in a request's story and turned
into an ``application/problem+json`` response once, at the edge
(``shared.responses.answers_problems``). Problem types are URNs documented in
docs/api.md and ``openapi.yaml``; their ``detail`` never carries a secret or a
setting's value.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

import azure.functions as func

PROBLEM_JSON = "application/problem+json"
TWILIO_ERROR_DOCS = "https://www.twilio.com/docs/errors/{code}"


class Problem(Exception):
    """An answer that refuses the request, with what the client needs to act on it."""

    def __init__(
        self,
        status: int,
        slug: str,
        detail: str,
        *,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.type = f"urn:twilio-functions:problem:{slug}"
        self.title = title or HTTPStatus(status).phrase
        self.detail = detail
        self.headers = headers or {}
        self.extensions = {k: v for k, v in extensions.items() if v is not None}
        # For the log line only: what went wrong upstream (never sent to the client).
        self.cause: str | None = None

    def body(self) -> dict[str, Any]:
        """The problem document, members first as RFC 9457 lists them."""
        return {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            **self.extensions,
        }

    def to_response(self) -> func.HttpResponse:
        return func.HttpResponse(
            json.dumps(self.body()),
            status_code=self.status,
            headers=self.headers,
            mimetype=PROBLEM_JSON,
        )


def invalid_field(field: str, reason: str) -> Problem:
    return Problem(400, "invalid-field", f"'{field}' {reason}", title="Invalid field", field=field)


def invalid_body(detail: str) -> Problem:
    return Problem(400, "invalid-body", detail, title="Invalid request body")


def invalid_request(detail: str) -> Problem:
    return Problem(400, "invalid-request", detail, title="Invalid request")


def method_not_allowed(method: str, allowed: tuple[str, ...]) -> Problem:
    return Problem(
        405, "method-not-allowed", f"{method} is not allowed here; use {', '.join(allowed)}",
        headers={"Allow": ", ".join(allowed)},
    )


def too_large(limit: int) -> Problem:
    return Problem(413, "body-too-large", f"the request body is over {limit} bytes")


def unsupported_media_type(accepted: tuple[str, ...]) -> Problem:
    return Problem(
        415, "unsupported-media-type", f"send the body as {' or '.join(accepted)}",
        headers={"Accept-Post": ", ".join(accepted)},
    )


def unsupported_charset() -> Problem:
    return Problem(
        415, "unsupported-media-type",
        "send JSON as UTF-8 (or UTF-16, UTF-32) and forms as UTF-8, with no other charset",
    )


def destination_refused(field: str, reason: str) -> Problem:
    return _refused(Problem(403, "destination-refused", f"'{field}' refused: {reason}",
                            title="Destination not allowed", field=field), reason)


def sender_refused(field: str, reason: str) -> Problem:
    return _refused(Problem(403, "sender-refused", f"'{field}' refused: {reason}",
                            title="Sender not allowed", field=field), reason)


def _refused(problem: Problem, reason: str) -> Problem:
    """The policy's reason goes to the log line too: it names a rule, never a number."""
    problem.cause = reason
    return problem


RECIPIENT_OPTED_OUT = "urn:twilio-functions:problem:recipient-opted-out"


def recipient_opted_out(field: str, twilio_code: int | None = None) -> Problem:
    """The recipient texted STOP to this line (or Twilio says so, 21610): nothing is sent."""
    return Problem(
        403, "recipient-opted-out", f"'{field}' opted out of messages from this number (they "
        "replied STOP); they can opt back in by texting START", title="Recipient opted out",
        field=field, twilio_code=twilio_code,
        more_info=TWILIO_ERROR_DOCS.format(code=twilio_code) if twilio_code else None)


def misconfigured(setting: str, reason: str) -> Problem:
    return Problem(
        500, "misconfigured", f"App setting {setting} {reason}",
        title="The function app is misconfigured", setting=setting,
    )


def bad_signature() -> Problem:
    return Problem(
        403, "invalid-signature",
        "the request does not carry a valid X-Twilio-Signature for this URL",
        title="Invalid Twilio signature",
    )


def webhook_refused(detail: str, *, cause: str, field: str | None = None) -> Problem:
    """A signed (or unchecked) request that is still not one Twilio sends to this app."""
    problem = Problem(403, "webhook-refused", detail, title="Not a Twilio webhook for this app",
                      field=field)
    problem.cause = cause
    return problem


def internal_error() -> Problem:
    return Problem(500, "internal-error", "the request failed unexpectedly; it has been logged")


def sign_in_required() -> Problem:
    return Problem(
        401, "sign-in-required", "this app requires a signed-in user (App Service "
        "Authentication); sign in and send the session token",
        title="Sign-in required", headers={"WWW-Authenticate": "Bearer"},
    )


def not_found(detail: str) -> Problem:
    return Problem(404, "not-found", detail)


def store_unavailable(retry_after: int, detail: str = "the delivery status store cannot be "
                      "reached; retry later") -> Problem:
    return Problem(503, "store-unavailable", detail, title="Store unavailable",
                   headers={"Retry-After": str(retry_after)})


def rate_limited(limit: str, quota: int, window: int, retry_after: int, detail: str) -> Problem:
    """429 naming the limit (``detail``: what it counts, when it resets), with
    ``Retry-After`` and the IETF httpapi RateLimit fields.

    ``RateLimit-Policy`` states the limit (``q`` requests per ``w`` seconds) and
    ``RateLimit`` what is left of it (``r``) and when it resets (``t`` seconds).
    """
    return Problem(
        429, "rate-limited", detail, title="Rate limit reached", limit=limit,
        headers={"Retry-After": str(retry_after),
                 "RateLimit-Policy": f'"{limit}";q={quota};w={window}',
                 "RateLimit": f'"{limit}";r=0;t={retry_after}'},
    )
