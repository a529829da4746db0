"""twiml's signature check end to end: real HTTP, the URL as the host builds it from the wire.

tests/test_twiml.py checks ``verify_signature`` on hand-built HttpRequests,
whose URL is whatever the test writes. Here the URL comes from the socket,
the Host header and the raw path through the devhost's mapping, as on Azure,
so these tests prove what a forger or a replayer actually meets:

- a signed request replayed with one thing changed (a form value, an added or
  dropped parameter, the query, a JSON body under ``bodySHA256``) is 403, while
  the untouched replay passes: Twilio's signatures carry no nonce, so integrity,
  not freshness, is what they guarantee;
- a signature made for another URL (host, port, scheme, path, query) is 403;
- behind ``PUBLIC_BASE_URL`` (``python -m devhost.host`` directly, since the
  launcher clears that setting in sandbox mode), the public URL decides: a
  request arriving with another Host header and scheme but signed for the
  public URL is 200, one signed for the URL the host sees is 403, and forwarded
  headers cannot steer it; and the URL make_call hands Twilio is exactly one
  whose signature the app accepts.
"""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from harness import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, SandboxThread
from live import LiveApp
from twilio.request_validator import RequestValidator

from twilio_sandbox.callbacks import call_params, signed_request

PUBLIC = "https://voice.contoso.example"
CALL = {"CallSid": "CA" + "d4" * 16, "AccountSid": ACCOUNT_SID, "From": FROM_NUMBER,
        "To": "+14155552671", "CallStatus": "in-progress", "Direction": "outbound-api"}
QUERY = "?" + urlencode({"message": "Your table is ready"})


def sign(url: str, params: dict[str, str] | None = None) -> str:
    return RequestValidator(AUTH_TOKEN).compute_signature(url, params or {})


def send(url: str, *, signature: str | None, form: dict[str, str] | None = None,
         body: bytes | None = None, headers: dict[str, str] | None = None,
         ) -> tuple[int, bytes]:
    """GET, or POST a form (or raw body), exactly as given: urllib sends the path verbatim."""
    all_headers = dict(headers or {})
    if signature is not None:
        all_headers["X-Twilio-Signature"] = signature
    if form is not None:
        body = urlencode(form).encode()
        all_headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
    req = urllib.request.Request(url, data=body, headers=all_headers,
                                 method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def refused(answer: tuple[int, bytes]) -> bool:
    status, body = answer
    return status == 403 and json.loads(body)["type"].endswith(":invalid-signature")


@pytest.fixture(scope="module")
def app() -> Iterator[LiveApp]:
    running = LiveApp({"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN})
    yield running
    assert running.stop() == 0


@pytest.fixture(scope="module")
def any_host_app() -> Iterator[LiveApp]:
    """The launcher answering any Host (``--allow-host *``), as behind a proxy that forwards
    every name: what these tests show is the app's own origin rule, not the host's guard."""
    running = LiveApp({"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN},
                      args=("--sandbox", "--allow-host", "*"))
    yield running
    assert running.stop() == 0


# --- replays with a change ---------------------------------------------------------


@pytest.mark.parametrize(
    ("form", "query"),
    [
        ({**CALL, "To": "+19005551234"}, QUERY),
        ({**CALL, "Digits": "1"}, QUERY),
        ({k: v for k, v in CALL.items() if k != "CallStatus"}, QUERY),
        (CALL, "?" + urlencode({"message": "Wire the money"})),
        (CALL, ""),
    ],
    ids=["value-changed", "parameter-added", "parameter-dropped", "query-changed",
         "query-dropped"],
)
def test_replay_with_a_change_is_refused(app: LiveApp, form: dict[str, str], query: str) -> None:
    url = f"{app.base_url}/api/twiml{QUERY}"
    signature = sign(url, CALL)
    assert send(url, signature=signature, form=CALL)[0] == 200  # the genuine request
    assert refused(send(f"{app.base_url}/api/twiml{query}", signature=signature, form=form))
    assert send(url, signature=signature, form=CALL)[0] == 200  # an untouched replay passes


def test_get_replay_with_a_changed_query_is_refused(app: LiveApp) -> None:
    url = f"{app.base_url}/api/twiml?message=hello&voice=woman"
    signature = sign(url)
    status, body = send(url, signature=signature)
    assert status == 200 and b'<Say voice="woman">hello</Say>' in body
    assert refused(send(url.replace("woman", "man"), signature=signature))
    assert refused(send(f"{url}&language=fr-FR", signature=signature))


def test_json_body_is_bound_by_its_hash(app: LiveApp) -> None:
    """Twilio signs JSON webhooks through ``bodySHA256`` in the URL: the body cannot change."""
    body = json.dumps({"CallSid": CALL["CallSid"], "CallStatus": "in-progress"}).encode()
    url = f"{app.base_url}/api/twiml?{urlencode({'bodySHA256': hashlib.sha256(body).hexdigest()})}"
    headers = {"Content-Type": "application/json"}
    signature = sign(url)
    assert send(url, signature=signature, body=body, headers=headers)[0] == 200
    tampered = body.replace(b"in-progress", b"completed")
    assert refused(send(url, signature=signature, body=tampered, headers=headers))


# --- signatures for another URL ---------------------------------------------------


@pytest.mark.parametrize(
    "signed_for",
    [
        "https://attacker.example{path}",  # another host
        "http://127.0.0.1:1{path}",  # another port
        "https://127.0.0.1:{port}{path}",  # another scheme
        "{base}/api/make_call" + QUERY,  # another path
        "{base}{path}&x=1",  # another query
    ],
    ids=["host", "port", "scheme", "path", "query"],
)
def test_signature_for_another_url_is_refused(app: LiveApp, signed_for: str) -> None:
    path = f"/api/twiml{QUERY}"
    url = f"{app.base_url}{path}"
    other = signed_for.format(base=app.base_url, path=path, port=urlsplit(url).port)
    assert other != url
    assert refused(send(url, signature=sign(other, CALL), form=CALL))


def test_without_public_base_url_a_proxied_request_is_a_misconfiguration(
        any_host_app: LiveApp) -> None:
    """Why PUBLIC_BASE_URL exists: without it the app knows its origin only on loopback, so a
    request reaching it under a public Host name says which setting is missing."""
    path = f"/api/twiml{QUERY}"
    status, body = send(f"{any_host_app.base_url}{path}", signature=sign(f"{PUBLIC}{path}", CALL),
                        form=CALL, headers={"Host": urlsplit(PUBLIC).netloc})
    assert status == 500
    assert json.loads(body)["setting"] == "PUBLIC_BASE_URL"


def call_with_host(app: LiveApp, host: str) -> tuple[int, bytes]:
    req = urllib.request.Request(
        f"{app.base_url}/api/make_call", method="POST",
        data=json.dumps({"to": "+14155552671"}).encode(),
        headers={"Content-Type": "application/json", "Host": host})
    try:
        urllib.request.urlopen(req, timeout=10)
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    return 201, b"{}"


def test_a_host_header_cannot_choose_the_calls_twiml(any_host_app: LiveApp) -> None:
    """The reproduction: Host: attacker.example must not make Twilio fetch the attacker's TwiML."""
    before = len(any_host_app.state()["calls"])
    status, body = call_with_host(any_host_app, "attacker.example")
    assert status == 500
    assert json.loads(body)["setting"] == "PUBLIC_BASE_URL"
    assert len(any_host_app.state()["calls"]) == before


def test_the_local_host_refuses_a_foreign_host_before_the_app(app: LiveApp) -> None:
    """make run answers only loopback names (DNS rebinding): 421 from the host itself."""
    before = len(app.state()["calls"])
    status, body = call_with_host(app, "attacker.example")
    assert status == 421
    assert json.loads(body)["title"] == "Misdirected Request"
    assert len(app.state()["calls"]) == before


# --- behind a proxy or custom domain: PUBLIC_BASE_URL ----------------------------------


@pytest.fixture(scope="module")
def proxied(sandbox: SandboxThread) -> Iterator[LiveApp]:
    """The host CLI with PUBLIC_BASE_URL, its Twilio being the tests' sandbox thread.

    ``--allow-host *``: the host stands for a proxy that forwards any Host header,
    so what is shown is the app's own check.
    """
    env = {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
           "TWILIO_FROM_NUMBER": FROM_NUMBER, "TWILIO_API_BASE_URL": sandbox.base_url,
           "PUBLIC_BASE_URL": PUBLIC, "TWILIO_VALIDATE_SIGNATURE": "true",
           "TWILIO_API_KEY_SID": "", "TWILIO_API_KEY_SECRET": "",
           "TWILIO_MESSAGING_SERVICE_SID": "", "ALLOWED_COUNTRIES": ""}
    running = LiveApp(env, args=("--allow-host", "*"), module="devhost.host")
    yield running
    assert running.stop() == 0


@pytest.mark.parametrize("host", [None, "voice.contoso.example", "contoso-fn.azurewebsites.net"],
                         ids=["loopback-host", "public-host", "azure-host"])
def test_signed_for_the_public_url_passes_whatever_the_host_sees(proxied: LiveApp,
                                                                 host: str | None) -> None:
    path = f"/api/twiml{QUERY}"
    headers = {"Host": host} if host else {}
    # The host sees http:// and its own Host header; Twilio signed https://voice.contoso.example.
    status, body = send(f"{proxied.base_url}{path}", signature=sign(f"{PUBLIC}{path}", CALL),
                        form=CALL, headers=headers)
    assert status == 200, body
    assert b"Your table is ready" in body
    seen = f"http://{host or urlsplit(proxied.base_url).netloc}{path}"
    assert refused(send(f"{proxied.base_url}{path}", signature=sign(seen, CALL), form=CALL,
                        headers=headers))


@pytest.mark.parametrize("signed_for", ["http://voice.contoso.example", "https://attacker.example"],
                         ids=["public-host-over-http", "forwarded-host"])
def test_forwarded_headers_do_not_steer_the_signed_url(proxied: LiveApp, signed_for: str) -> None:
    path = f"/api/twiml{QUERY}"
    forwarded = urlsplit(signed_for)
    headers = {"Host": forwarded.netloc, "X-Forwarded-Host": forwarded.netloc,
               "X-Forwarded-Proto": forwarded.scheme}
    assert refused(send(f"{proxied.base_url}{path}", signature=sign(f"{signed_for}{path}", CALL),
                        form=CALL, headers=headers))


def test_the_url_given_to_twilio_is_one_the_app_accepts(proxied: LiveApp,
                                                        sandbox: SandboxThread) -> None:
    """make_call → Twilio gets a public TwiML URL; Twilio's signed fetch of it, relayed by the
    proxy to the host, is answered with the caller's message."""
    req = urllib.request.Request(
        f"{proxied.base_url}/api/make_call", method="POST",
        data=json.dumps({"to": "+14155552671", "message": "Proxy check 42"}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as response:
        sid = json.loads(response.read())["sid"]
    [call] = [c for c in sandbox.calls if c["sid"] == sid]
    twiml_url = call["request"]["Url"]
    assert twiml_url.startswith(f"{PUBLIC}/api/twiml?")

    url, form, headers = signed_request(twiml_url, "POST", call_params(call), AUTH_TOKEN)
    parts = urlsplit(url)
    relayed = f"{proxied.base_url}{parts.path}?{parts.query}"  # what the proxy forwards
    status, body = send(relayed, signature=headers["X-Twilio-Signature"], form=form)
    assert status == 200, body
    assert b"Proxy check 42" in body


# --- the sandbox's own signed fetch ---------------------------------------------------------


def _default_message_call(app: LiveApp) -> dict[str, Any]:
    req = urllib.request.Request(f"{app.base_url}/api/make_call", method="POST",
                                 data=json.dumps({"to": "+14155552671"}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as response:
        sid = json.loads(response.read())["sid"]
    state = app.wait_for(lambda s: any(c["sid"] == sid and c["status"] in ("completed", "failed")
                                       for c in s["calls"]))
    return next(c for c in state["calls"] if c["sid"] == sid)


def test_the_app_accepts_a_verbatim_url_with_escapes(app: LiveApp) -> None:
    """The default message's TwiML URL carries %21 ('!'); sent verbatim, its signature holds."""
    call = _default_message_call(app)
    url = call["request"]["Url"].partition("#")[0]  # Twilio requests it without its overrides
    assert "%21" in url
    assert send(url, signature=sign(url, CALL), form=CALL)[0] == 200


def test_the_sandbox_call_with_the_default_message_is_answered(app: LiveApp) -> None:
    call = _default_message_call(app)
    assert call["twiml_status"] == 200, call.get("error")
