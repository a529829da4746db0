"""The request mix: what a mobile app and Twilio send, plus a share of bad requests.

Each planned request carries what it must get when Twilio behaves
(``expected`` status and problem slug) and whether it reaches Twilio at all:
only those may instead get an injected fault's answer. Successful sends carry
a unique tag (``load-<n>``) in the SMS body or the call's message, so every
record the sandbox keeps can be traced back to the one request that made it.

The mix is drawn from ``random.Random(seed)``: the same seed, the same requests.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
KEY_HEADER = "x-functions-key"

#: Valid, non-premium destinations the sandbox accepts (no magic-number row refuses them).
DESTINATIONS = ("+14155552671", "+12025550143", "+16175550199", "+442071838750",
                "+33142685300", "+4930901820", "+61293744000")
PREMIUM = "+19005551234"
TWILIO_REFUSES = "+15005550001"  # Twilio's magic "invalid To" number: 400, code 21211
MAX_BODY_BYTES = 64 * 1024


@dataclass(frozen=True)
class Planned:
    """One request of the run and the answer it must get."""

    index: int
    kind: str
    function: str
    method: str
    path: str  # path and query, as sent
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    expected: int = 200
    problem: str | None = None  # expected problem slug when ``expected`` is a refusal
    reaches_twilio: bool = False
    tag: str | None = None  # marker of a send that must be recorded by the sandbox


@dataclass(frozen=True)
class Plan:
    """Where to send (base URL) and with which secrets; builds each kind of request."""

    base_url: str
    auth_token: str
    function_key: str | None
    account_sid: str

    def keyed(self, index: int, path: str) -> tuple[str, dict[str, str]]:
        """Path and headers carrying the function key: mostly the header, else ``?code=``."""
        if self.function_key is None:
            return path, {}
        if index % 4 == 3:
            return f"{path}?{urlencode({'code': self.function_key})}", {}
        return path, {KEY_HEADER: self.function_key}

    def signature(self, path: str, params: dict[str, str] | None = None) -> str:
        """What Twilio would put in X-Twilio-Signature for this URL (and POST form)."""
        return RequestValidator(self.auth_token).compute_signature(
            f"{self.base_url}{path}", params or {})


def _json(data: object) -> bytes:
    return json.dumps(data).encode()


def _post(plan: Plan, index: int, kind: str, function: str, body: bytes,
          content_type: str = JSON, *, expected: int, problem: str | None = None,
          reaches_twilio: bool = False, tag: str | None = None) -> Planned:
    path, headers = plan.keyed(index, f"/api/{function}")
    return Planned(index, kind, function, "POST", path,
                   {**headers, "Content-Type": content_type}, body, expected, problem,
                   reaches_twilio, tag)


# --- valid requests -------------------------------------------------------------


def sms_json(plan: Plan, i: int, rng: random.Random) -> Planned:
    tag = f"load-{i}"
    body = _json({"to": rng.choice(DESTINATIONS), "body": f"Your code is ready ({tag})"})
    return _post(plan, i, "sms-json", "send_sms", body, expected=201, reaches_twilio=True,
                 tag=tag)


def sms_form(plan: Plan, i: int, rng: random.Random) -> Planned:
    tag = f"load-{i}"
    body = urlencode({"to": rng.choice(DESTINATIONS), "body": f"Form message {tag}"}).encode()
    return _post(plan, i, "sms-form", "send_sms", body, FORM, expected=201,
                 reaches_twilio=True, tag=tag)


def mms(plan: Plan, i: int, rng: random.Random) -> Planned:
    tag = f"load-{i}"
    body = _json({"to": rng.choice(DESTINATIONS), "body": f"Picture {tag}",
                  "media_url": ["https://example.com/receipt.png"]})
    return _post(plan, i, "mms", "send_sms", body, expected=201, reaches_twilio=True, tag=tag)


def call(plan: Plan, i: int, rng: random.Random) -> Planned:
    tag = f"load-{i}"
    # Letters, digits, spaces and '-' only: text the sandbox's TwiML fetch sends verbatim.
    fields = {"to": rng.choice(DESTINATIONS), "message": f"Your table is ready {tag}"}
    if rng.random() < 0.3:
        fields["voice"] = "Polly.Amy"
    return _post(plan, i, "call", "make_call", _json(fields), expected=201,
                 reaches_twilio=True, tag=tag)


def twiml_get(plan: Plan, i: int, rng: random.Random) -> Planned:
    path = f"/api/twiml?{urlencode({'message': f'Hello caller {i}'})}"
    return Planned(i, "twiml-get", "twiml", "GET", path,
                   {"X-Twilio-Signature": plan.signature(path)})


def twiml_call_webhook(plan: Plan, i: int, rng: random.Random) -> Planned:
    path = f"/api/twiml?{urlencode({'message': f'Connecting you {i}'})}"
    params = {"CallSid": f"CA{i:032x}", "AccountSid": plan.account_sid,
              "From": "+15005550006", "To": rng.choice(DESTINATIONS),
              "CallStatus": "in-progress", "Direction": "outbound-api"}
    return Planned(i, "twiml-post", "twiml", "POST", path,
                   {"X-Twilio-Signature": plan.signature(path, params), "Content-Type": FORM},
                   urlencode(params).encode())


def twiml_incoming_sms(plan: Plan, i: int, rng: random.Random) -> Planned:
    # Not a keyword: a STOP would opt the number out, and later sends to it be refused.
    params = {"MessageSid": f"SM{i:032x}", "AccountSid": plan.account_sid,
              "From": rng.choice(DESTINATIONS), "To": "+15005550006", "Body": "Thanks!"}
    return Planned(i, "twiml-sms", "twiml", "POST", "/api/twiml",
                   {"X-Twilio-Signature": plan.signature("/api/twiml", params),
                    "Content-Type": FORM},
                   urlencode(params).encode())


# --- refused requests -----------------------------------------------------------


def bad_number(plan: Plan, i: int, rng: random.Random) -> Planned:
    return _post(plan, i, "bad-number", "send_sms", _json({"to": "4155552671", "body": "x"}),
                 expected=400, problem="invalid-field")


def premium(plan: Plan, i: int, rng: random.Random) -> Planned:
    return _post(plan, i, "premium", "make_call", _json({"to": PREMIUM}), expected=403,
                 problem="destination-refused")


def client_twiml_url(plan: Plan, i: int, rng: random.Random) -> Planned:
    body = _json({"to": rng.choice(DESTINATIONS), "url": "https://attacker.example/twiml"})
    return _post(plan, i, "client-url", "make_call", body, expected=400,
                 problem="invalid-field")


def not_json(plan: Plan, i: int, rng: random.Random) -> Planned:
    return _post(plan, i, "not-json", "send_sms", b"{to: oops", expected=400,
                 problem="invalid-body")


def plain_text(plan: Plan, i: int, rng: random.Random) -> Planned:
    return _post(plan, i, "plain-text", "make_call", b"call me", "text/plain", expected=415,
                 problem="unsupported-media-type")


def too_large(plan: Plan, i: int, rng: random.Random) -> Planned:
    body = _json({"to": rng.choice(DESTINATIONS), "body": "x" * MAX_BODY_BYTES})
    return _post(plan, i, "too-large", "send_sms", body, expected=413, problem="body-too-large")


def wrong_method(plan: Plan, i: int, rng: random.Random) -> Planned:
    path, headers = plan.keyed(i, "/api/send_sms")
    return Planned(i, "wrong-method", "send_sms", "GET", path, headers, expected=405,
                   problem="method-not-allowed")


def unsigned_twiml(plan: Plan, i: int, rng: random.Random) -> Planned:
    return Planned(i, "unsigned", "twiml", "GET", "/api/twiml?message=hi", expected=403,
                   problem="invalid-signature")


def tampered_twiml(plan: Plan, i: int, rng: random.Random) -> Planned:
    signature = plan.signature("/api/twiml?message=hello")
    return Planned(i, "tampered", "twiml", "GET", "/api/twiml?message=goodbye",
                   {"X-Twilio-Signature": signature}, expected=403, problem="invalid-signature")


def twilio_refuses(plan: Plan, i: int, rng: random.Random) -> Planned:
    return _post(plan, i, "twilio-refuses", "send_sms", _json({"to": TWILIO_REFUSES,
                                                               "body": "x"}),
                 expected=400, problem="twilio-refused", reaches_twilio=True)


Builder = Callable[[Plan, int, random.Random], Planned]

#: (builder, weight): valid requests first, then the refusals (about 15 % in all).
MIX: tuple[tuple[Builder, int], ...] = (
    (sms_json, 26), (sms_form, 5), (mms, 3), (call, 24),
    (twiml_get, 15), (twiml_call_webhook, 9), (twiml_incoming_sms, 3),
    (bad_number, 2), (premium, 2), (client_twiml_url, 2), (not_json, 2), (plain_text, 1),
    (too_large, 1), (wrong_method, 1), (unsigned_twiml, 1), (tampered_twiml, 1),
    (twilio_refuses, 2),
)


def build(plan: Plan, count: int, seed: int) -> list[Planned]:
    """``count`` requests drawn from ``MIX`` with ``random.Random(seed)``."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible mix, not a secret
    builders = [builder for builder, _ in MIX]
    weights = [weight for _, weight in MIX]
    return [rng.choices(builders, weights)[0](plan, i, rng) for i in range(count)]
