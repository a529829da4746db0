"""openapi.yaml against the running app: Schemathesis fuzzes the host, the sandbox answers.

Mobile clients are generated from openapi.yaml, so the app must answer exactly
what it promises. Schemathesis builds requests from the contract (its
examples, then coverage cases, then random ones; valid and invalid) and sends
them to ``python -m devhost --sandbox``: the host on Azure's v1 runtime, with
the loopback Twilio sandbox. Every default check runs on every answer: no
undocumented status, header or content type, every body matching its schema,
valid data accepted and invalid data refused, undeclared methods answered 405
with ``Allow``, function keys enforced, and no 5xx but the documented upstream
502/504 (a 500 is a bug).

The host enforces function keys here (``--enforce-keys``, as Azure does), so
the declared key scheme is checked as well; the key goes in the header, as a
client sends it. ``twiml`` requests are signed the way Twilio signs them, so
they take the real signature path; one the fuzzer sends without the header
stays unsigned. Generation is derandomized: CI sees the same cases every run.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import requests
import schemathesis
from harness import ACCOUNT_SID, AUTH_TOKEN
from live import ROOT, LiveApp
from schemathesis import Case, CheckContext, GenerationMode, Response
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

from shared.calls import MAX_TWIML_URL
from shared.phone import is_e164

SPEC = ROOT / "openapi.yaml"
FUNCTION_KEY = "fake-function-key-s3cr3t-0003"
PROBLEM = "urn:twilio-functions:problem:"
FORM = "application/x-www-form-urlencoded"
# Random cases per operation (valid and invalid ones), on top of the examples and the
# coverage cases: about 490 cases for the four operations, a few seconds on 2 cores.
MAX_EXAMPLES = 60
# Real numbers, so that valid cases get through to Twilio instead of failing on numbers
# that fit the E.164 pattern but that no country assigns: ordinary mobiles and
# landlines, the sandbox's one valid sender, Twilio's magic test numbers (each refused
# in its own way) and premium-rate numbers the destination policy refuses.
NUMBERS = ["+14155552671", "+447911123456", "+33612345678", "+61412345678", "+5511987654321",
           "+15005550006", "+15005550001", "+15005550002", "+15005550003", "+15005550004",
           "+15005550009", "+19005551234", "+448712345678"]
SENDERS = ["+15005550006", "+15005550001", "+15005550007", "+15005550008", "+14155552671"]
# URLs no pattern describes: ones that make a URL parser raise (unbalanced IPv6
# brackets, a fullwidth character that NFKC turns into a delimiter) and ones with no host.
MALFORMED_URLS = ["https://[", "https://[::1/a.mp3", "https://a]b/a.mp3",
                  "https://exa\uff03mple.com/a.mp3", "https:///a.mp3", "https://:443/a.mp3"]
TIMEOUT_SECONDS = 2
# What Twilio (the sandbox) does wrong, and the documented answer the client gets.
UPSTREAM_FAULTS = [
    ({"kind": "rate_limit", "retry_after": 7}, 429, "twilio-rate-limited"),
    ({"kind": "status", "status": 409, "code": 21220}, 422, "twilio-refused"),
    ({"kind": "status", "status": 401}, 502, "twilio-credentials"),
    ({"kind": "status", "status": 503}, 502, "twilio-unavailable"),
    ({"kind": "malformed"}, 502, "twilio-unavailable"),
    ({"kind": "drop"}, 502, "twilio-unavailable"),
    ({"kind": "delay", "delay": TIMEOUT_SECONDS + 1}, 504, "twilio-timeout"),
]
REQUESTS = {"/make_call": {"to": "+14155552671", "message": "hi"},
            "/send_sms": {"to": "+14155552671", "body": "hi"}}

CONFIG = schemathesis.Config.from_dict({
    "dictionaries": {"numbers": {"values": NUMBERS}, "senders": {"values": SENDERS}},
    "parameters": {
        "body.to": {"dictionary": "numbers", "probability": 0.7},
        "body.from": {"dictionary": "senders", "probability": 0.3},
    },
    "generation": {
        "mode": "all",
        "max-examples": MAX_EXAMPLES,
        "deterministic": True,
        "database": "none",
    },
    "auth": {"openapi": {"functionKeyHeader": {"api_key": FUNCTION_KEY}}},
    "checks": {
        # The documented upstream failures are the only 5xx allowed.
        "not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", "502", "504"]},
        # A schema cannot say which numbers exist or which ones Twilio takes, so valid
        # data may get 400/422 for that; `explained_refusal` checks the reason.
        "positive_data_acceptance": {
            "expected-statuses": ["2xx", "400", "401", "403", "422", "429", "502", "504"],
        },
        "negative_data_rejection": {
            "expected-statuses": ["400", "401", "403", "405", "413", "415", "422"],
        },
    },
})
schema = schemathesis.openapi.from_path(SPEC, config=CONFIG)
RAN: Counter[tuple[str, str]] = Counter()


class TwilioSigningSession(requests.Session):
    """Signs each ``twiml`` request that carries ``X-Twilio-Signature`` as Twilio would.

    The fuzzer only makes up a value for the header; a valid signature covers
    the exact URL and form parameters sent, so it is computed here, on the
    prepared request. A request without the header stays unsigned.
    """

    def __init__(self, auth_token: str) -> None:
        super().__init__()
        self._validator = RequestValidator(auth_token)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        url = request.url or ""
        if urlsplit(url).path.endswith("/twiml") and "X-Twilio-Signature" in request.headers:
            request.headers["X-Twilio-Signature"] = self._validator.compute_signature(
                url, _form_params(request))
        return super().send(request, **kwargs)


def _form_params(request: requests.PreparedRequest) -> MultiDict[str, str]:
    """The POST parameters Twilio signs (and the app checks): a form body's fields."""
    content_type = request.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    if request.method != "POST" or content_type != FORM or not request.body:
        return MultiDict()
    body = request.body if isinstance(request.body, str) else request.body.decode()
    return MultiDict(parse_qsl(body, keep_blank_values=True))


def explained_refusal(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """Valid data is refused (400) only for what the schema cannot express.

    That is a number of the right shape that is no phone number, a message
    whose percent-encoding overflows the TwiML URL (a byte count, not a
    character count), or Twilio refusing a parameter (an unowned ``from``, a
    magic test number).
    """
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code != 400:
        return None
    problem = json.loads(response.content)
    field = problem.get("field")
    sent = case.body.get(field) if isinstance(case.body, dict) and field else None
    explained = problem["type"] == f"{PROBLEM}twilio-refused" or (
        problem["type"] == f"{PROBLEM}invalid-field" and field in ("to", "from")
        and isinstance(sent, str) and not is_e164(sent.strip())) or (
        problem["type"] == f"{PROBLEM}invalid-field" and field == "message"
        and isinstance(sent, str)  # 200: what the origin, path, voice and language can take
        and len(urlencode({"message": sent.strip()})) > MAX_TWIML_URL - 200)
    assert explained, f"valid data refused for a reason the schema should state: {problem}"
    return None


@pytest.fixture(scope="module")
def live_app() -> Iterator[LiveApp]:
    """``make run`` with keys enforced and no optional setting, whatever the environment has."""
    env = {
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "FUNCTIONS_LOCAL_KEY": FUNCTION_KEY,
        "TWILIO_TIMEOUT_SECONDS": str(TIMEOUT_SECONDS),
        **dict.fromkeys(("ALLOWED_COUNTRIES", "ALLOW_PREMIUM_NUMBERS",
                         "TWILIO_VALIDATE_SIGNATURE", "SMS_REPLY_MESSAGE"), ""),
    }
    app = LiveApp(env, args=("--sandbox", "--enforce-keys"))
    yield app
    assert app.stop() == 0


@pytest.fixture(scope="module")
def session() -> Iterator[TwilioSigningSession]:
    with TwilioSigningSession(AUTH_TOKEN) as signing:
        yield signing


@schema.parametrize()
def test_contract(case: Case, live_app: LiveApp, session: TwilioSigningSession) -> None:
    """Each generated request gets an answer the contract documents, in every detail."""
    mode = case.meta.generation.mode if case.meta else GenerationMode.POSITIVE
    RAN[case.operation.label, mode.value] += 1
    case.call_and_validate(base_url=f"{live_app.base_url}/api", session=session,
                           additional_checks=[explained_refusal])


@pytest.mark.parametrize("media_type", ["application/json", FORM])
@pytest.mark.parametrize("url", MALFORMED_URLS)
def test_malformed_media_urls_are_refused(url: str, media_type: str, live_app: LiveApp,
                                          session: TwilioSigningSession) -> None:
    """Once a 500: the URL parser raised on some of these. The contract's checks run too."""
    case = schema["/send_sms"]["POST"].Case(
        body={"to": "+14155552671", "body": "hi", "media_url": [url]}, media_type=media_type,
        headers={"x-functions-key": FUNCTION_KEY})
    response = case.call_and_validate(base_url=f"{live_app.base_url}/api", session=session)
    assert response.status_code == 400
    assert response.json()["field"] == "media_url"


@pytest.mark.parametrize("url", [url.replace("https:", "http:") for url in MALFORMED_URLS])
def test_malformed_twimlet_urls_are_refused(url: str, live_app: LiveApp,
                                            session: TwilioSigningSession) -> None:
    """Once a 500: the twimlet ``Message`` plays an http(s) URL, and parsed it unguarded."""
    case = schema["/twiml"]["GET"].Case(query={"Message": url},
                                        headers={"X-Twilio-Signature": "signed by the session"})
    response = case.call_and_validate(base_url=f"{live_app.base_url}/api", session=session)
    assert response.status_code == 400
    assert response.json()["field"] == "Message"


@pytest.mark.parametrize("path", sorted(REQUESTS))
@pytest.mark.parametrize(("fault", "status", "slug"), UPSTREAM_FAULTS)
def test_twilio_failures_are_answered_as_documented(
        path: str, fault: dict[str, Any], status: int, slug: str, live_app: LiveApp,
        session: TwilioSigningSession) -> None:
    """The 422/429/502/504 answers, which valid fuzzing cases never meet, match the contract."""
    live_app.sandbox("POST", "/_sandbox/faults", {**fault, "count": 1})
    try:
        case = schema[path]["POST"].Case(body=REQUESTS[path], media_type="application/json",
                                         headers={"x-functions-key": FUNCTION_KEY})
        response = case.call_and_validate(base_url=f"{live_app.base_url}/api", session=session)
    finally:
        live_app.sandbox("DELETE", "/_sandbox/faults")
    assert (response.status_code, response.json()["type"]) == (status, PROBLEM + slug)


@pytest.mark.parametrize("path", sorted(REQUESTS))
@pytest.mark.parametrize(("change", "status", "slug"), [
    ({"to": "+19005551234"}, 403, "destination-refused"),
    ({"to": "+15005550001"}, 400, "twilio-refused"),
    ({"padding": "x" * 70_000}, 413, "body-too-large"),
])
def test_refusals_are_answered_as_documented(
        path: str, change: dict[str, str], status: int, slug: str, live_app: LiveApp,
        session: TwilioSigningSession) -> None:
    """Refusals that random valid data meets only by chance, checked every run."""
    case = schema[path]["POST"].Case(body={**REQUESTS[path], **change},
                                     media_type="application/json",
                                     headers={"x-functions-key": FUNCTION_KEY})
    response = case.call_and_validate(base_url=f"{live_app.base_url}/api", session=session)
    assert (response.status_code, response.json()["type"]) == (status, PROBLEM + slug)


def test_the_run_covered_every_operation_both_ways(live_app: LiveApp) -> None:
    """A run that sent nothing, or only valid data, or never reached Twilio, proves nothing.

    Each call placed was then answered by the sandbox, which fetched its TwiML
    signed, like Twilio: the URL make_call builds must be one twiml accepts.
    """
    if not RAN:
        pytest.skip("the contract cases were not selected")
    assert {operation for operation, _ in RAN} == {
        "POST /make_call", "POST /send_sms", "GET /twiml", "POST /twiml"}
    assert {mode for _, mode in RAN} == {"positive", "negative"}
    state = live_app.wait_for(lambda s: all(c["status"] in ("completed", "failed")
                                            for c in s["calls"]))
    assert state["calls"] and state["messages"], "no valid case got through to Twilio"
    unanswered = [(c["request"]["Url"], c.get("twiml_status"), c.get("error"))
                  for c in state["calls"] if c.get("twiml_status") != 200]
    assert not unanswered
