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
stays unsigned. Generation is derandomized and sees no literal of the
project's code (see ``no_literals_from_loaded_modules``): every run, alone or
after any other test, sends the same cases.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import parse_qsl, urlencode, urlsplit

import jsonschema_rs
import phonenumbers
import pytest
import requests
import schemathesis
from harness import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER
from hypothesis import Phase, given, settings
from hypothesis.internal.conjecture import providers
from hypothesis.internal.constants_ast import Constants
from live import ROOT, LiveApp
from schemathesis import Case, CheckContext, GenerationMode, Response
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

from shared.calls import MAX_TWIML_URL
from shared.messages import read_sms
from shared.phone import is_e164
from shared.problems import Problem
from shared.request_body import Payload
from shared.settings import load_settings

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
# Called by Twilio, so signed like Twilio's requests.
WEBHOOKS = ("/twiml", "/status_callback")
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
        # Header values without tabs too: the local host refuses any byte outside
        # printable ASCII in a header (400 about:blank, before the app), which
        # would otherwise answer for the app on `Idempotency-Key`.
        "exclude-header-characters": "\t\n\r\x1f\x1e\x1d\x1c",
    },
    "auth": {"openapi": {"functionKeyHeader": {"api_key": FUNCTION_KEY}}},
    "checks": {
        # The documented upstream failures are the only 5xx allowed.
        "not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", "502", "504"]},
        # A schema cannot say which numbers exist or which ones Twilio takes, so valid
        # data may get 400/422 for that; `explained_refusal` checks the reason. Nor
        # which SIDs exist: status answers 404 for a well-formed one it does not know.
        "positive_data_acceptance": {
            "expected-statuses": ["2xx", "400", "401", "403", "404", "422", "429", "502",
                                  "504"],
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
        if (urlsplit(url).path.endswith(WEBHOOKS)
                and "X-Twilio-Signature" in request.headers):
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
    character count), a language that is not the Google voice's own (the
    schema states it in words), or Twilio refusing a parameter (an unowned
    ``from``, a magic test number). A conversation's cursor and ``up_to`` are
    opaque to the schema: one of the right shape that no page gave, or no item of
    the thread, is refused by name.
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
        and len(urlencode({"message": sent.strip()})) > MAX_TWIML_URL - 200) or (
        problem["type"] == f"{PROBLEM}invalid-field" and field == "language"
        and str(_sent(case, "voice")).strip().startswith("Google.")) or (
        problem["type"] == f"{PROBLEM}invalid-field" and field in ("cursor", "up_to"))
    assert explained, f"valid data refused for a reason the schema should state: {problem}"
    return None


def _sent(case: Case, name: str) -> Any:
    """A field as the case sent it, in its body or its query."""
    body = case.body if isinstance(case.body, dict) else {}
    return body.get(name, (case.query or {}).get(name))


@pytest.fixture(scope="module", autouse=True)
def no_literals_from_loaded_modules() -> Iterator[None]:
    """Fuzz without the literals Hypothesis mines from the project's loaded modules.

    Hypothesis draws about 5% of its values from string and number literals
    of every non-test module in ``sys.modules``, a pool that grows as modules
    are imported. Which ones are loaded when this file runs depends on the
    tests collected and run before it, so a derandomized run still sent other
    cases alone than after the load test (and found a real mismatch only
    alone). With the pool held empty the cases depend on the schema alone;
    the dictionaries in ``CONFIG`` supply the values that matter here.
    """
    empty = Constants()
    with mock.patch.object(providers, "_get_local_constants", lambda: empty):
        providers.CONSTANTS_CACHE.cache.clear()  # drops pools computed before
        try:
            yield
        finally:
            providers.CONSTANTS_CACHE.cache.clear()


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
        "POST /make_call", "POST /send_sms", "GET /twiml", "POST /twiml", "GET /status/{sid}",
        "POST /status_callback", "GET /conversations", "GET /conversations/{number}",
        "POST /voice_token", "GET /media/{message_sid}/{n}",
        "DELETE /conversations/{number}", "POST /conversations/{number}/read",
        "PUT /conversations/{number}/block", "DELETE /conversations/{number}/block",
        "PUT /devices/{installation_id}", "DELETE /devices/{installation_id}"}
    assert {mode for _, mode in RAN} == {"positive", "negative"}
    state = live_app.wait_for(lambda s: all(c["status"] in ("completed", "failed")
                                            for c in s["calls"]))
    assert state["calls"] and state["messages"], "no valid case got through to Twilio"
    unanswered = [(c["request"]["Url"], c.get("twiml_status"), c.get("error"))
                  for c in state["calls"] if c.get("twiml_status") != 200]
    assert not unanswered


# --- the contract's own rules, checked without the running app ----------------

SCHEMAS = schema.raw_schema["components"]["schemas"]


def generated_bodies() -> list[Any]:
    """The first derandomized send_sms bodies, as the contract fuzzing draws them."""
    bodies: list[Any] = []

    @settings(derandomize=True, database=None, max_examples=40, phases=[Phase.generate])
    @given(case=schema["/send_sms"]["POST"].as_strategy())
    def draw(case: Case) -> None:
        bodies.append(case.body)

    draw()
    return bodies


def test_fuzzing_ignores_which_modules_are_loaded(tmp_path_factory: pytest.TempPathFactory,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Once, the send_sms case passed only when test_load_small.py was collected first."""
    before = generated_bodies()
    folder: Path = tmp_path_factory.mktemp("literals")
    words = [chr(code) for code in range(0x21, 0x7F)] + ["+14155552671", "https://a.b/c"]
    (folder / "project_literals.py").write_text(f"WORDS = {words!r}\nNUMBERS = {list(range(99))}\n")
    monkeypatch.syspath_prepend(str(folder))
    importlib.import_module("project_literals")
    try:
        assert generated_bodies() == before
    finally:
        del sys.modules["project_literals"]


def test_media_url_pattern_admits_exactly_what_the_app_takes() -> None:
    """Every character of the Basic Multilingual Plane inside a URL: schema and app agree.

    Once the pattern admitted U+0085 (NEL) while the app refuses white space
    of every script in a URL, as it should: Twilio would fetch another URL.
    """
    valid = jsonschema_rs.validator_for(SCHEMAS["MediaUrl"]).is_valid
    settings_ = load_settings({"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                               "TWILIO_FROM_NUMBER": FROM_NUMBER})

    def app_takes(url: str) -> bool:
        try:
            read_sms(Payload({"to": ["+14155552671"], "media_url": [[url]]}), settings_)
        except Problem:
            return False
        return True

    disagree = [f"U+{code:04X}" for code in range(0x10000) if not 0xD800 <= code <= 0xDFFF
                if valid(url := f"https://example.com/a{chr(code)}b.png") != app_takes(url)]
    assert not disagree


def test_e164_pattern_admits_what_can_be_a_number() -> None:
    """``+`` and 7 to 15 digits: every number libphonenumber knows fits, and no other shape.

    Its one shorter example, an Iranian short access number (+98 9601), is no
    destination for a mobile app's calls and texts.
    """
    patterns = [jsonschema_rs.validator_for(SCHEMAS[name]).is_valid
                for name in ("E164", "OptionalE164")]
    examples = {phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
                for region in phonenumbers.SUPPORTED_REGIONS
                for kind in range(11)
                if (number := phonenumbers.example_number_for_type(region, kind))}
    numbers = {number for number in examples if len(number) >= 8}
    assert len(numbers) > 900
    for valid in patterns:
        assert all(map(valid, numbers))
        assert all(valid("+1" + "2" * digits) for digits in range(6, 15))
        assert not any(valid("+1" + "2" * digits) for digits in (*range(6), 15, 16))
        assert not any(map(valid, ["+01234567", "14155552671", "+1415555267\u0661",
                                   "+1 4155552671"]))
