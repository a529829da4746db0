"""media/: the owner of an incoming MMS reads its files, fetched from Twilio, and nobody else.

The functions run in-process against the loopback Twilio sandbox (the real ``twilio``
library and aiohttp over HTTP) and the session's Azurite, with Easy Auth's headers
trusted. Each MMS is kept in the sandbox as Twilio keeps media (``MediaStore``) and
reaches ``twiml`` signed, as Twilio posts it; the end-to-end path through the
sandbox's own inbound SMS is test_media_e2e.py's.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import secrets
import ssl
import tempfile
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from harness import ACCOUNT_SID, SandboxThread, invoke, problem, refused
from test_two_way_sms import ALICE, BOB, ORIGIN, inbound_params, on_azure, receive, sent, user
from unique import number

from shared import twilio_client
from shared.media import MAX_REDIRECTS
from twilio_sandbox import resources
from twilio_sandbox.media import Upload

__all__ = ["on_azure"]  # the fixture, used by name

PNG = b"\x89PNG\r\n\x1a\n" + secrets.token_bytes(2000)


def keep_in_twilio(sandbox: SandboxThread, sid: str, files: list[tuple[str, bytes]]) -> list[str]:
    """What Twilio does with an MMS it receives: its media kept, behind its URLs."""
    kept = sandbox.call_soon(lambda: sandbox.sandbox.media.keep(
        ACCOUNT_SID, sid, [Upload(kind, body) for kind, body in files]))
    return [sandbox.base_url + resources.media_path(ACCOUNT_SID, sid, m.sid) for m in kept]


def mms_from(remote: str, urls: list[str], kinds: list[str], sid: str) -> dict[str, str]:
    """Twilio's webhook for an MMS with these media URLs."""
    params = inbound_params(remote, "", NumMedia=str(len(urls)))
    params.update(MessageSid=sid, SmsSid=sid, SmsMessageSid=sid)
    for index, (url, kind) in enumerate(zip(urls, kinds, strict=True)):
        params[f"MediaUrl{index}"], params[f"MediaContentType{index}"] = url, kind
    return params


def received(sandbox: SandboxThread, files: list[tuple[str, bytes]],
             owner: dict[str, str] = ALICE) -> str:
    """An MMS from a new number ``owner`` texted first, kept by Twilio and the app; its SID."""
    remote, sid = number(), "MM" + secrets.token_hex(16)
    sent(remote, owner)
    urls = keep_in_twilio(sandbox, sid, files)
    assert receive(mms_from(remote, urls, [kind for kind, _ in files], sid)).status_code == 200
    return sid


def media(sid: str, index: int | str, headers: dict[str, str] = ALICE,
          method: str = "GET") -> func.HttpResponse:
    """GET api/media/{sid}/{index}, routed as the host routes it."""
    return invoke("media", func.HttpRequest(
        method, f"{ORIGIN}/api/media/{sid}/{index}", headers=headers, body=b"",
        route_params={"message_sid": sid, "n": str(index)}))


def test_the_owner_gets_each_file_as_twilio_kept_it(on_azure):
    sid = received(on_azure, [("image/png", PNG), ("video/mp4", b"\x00\x00\x00\x18ftypmp42")])
    first, second = media(sid, 0), media(sid, 1)
    assert (first.status_code, first.get_body()) == (200, PNG)
    assert first.headers["Content-Type"] == "image/png"
    assert first.headers["Cache-Control"] == "private"
    assert first.headers["X-Content-Type-Options"] == "nosniff"
    assert first.headers["Content-Security-Policy"] == "sandbox"
    assert "Content-Disposition" not in first.headers
    assert (second.get_body(), second.headers["Content-Type"]) == (
        b"\x00\x00\x00\x18ftypmp42", "video/mp4")
    # Fetched with the account's credentials, from Twilio's (the sandbox's) media.
    assert refused(media(sid, 2), 404, "not-found")


def test_another_user_gets_404_as_for_a_message_nobody_has(on_azure):
    sid, nobodys = received(on_azure, [("image/png", PNG)]), "MM" + secrets.token_hex(16)
    theirs = refused(media(sid, 0, BOB), 404, "not-found")
    unknown = refused(media(nobodys, 0, BOB), 404, "not-found")
    assert theirs["detail"].replace(sid, "*") == unknown["detail"].replace(nobodys, "*")
    assert media(sid, 0).status_code == 200  # still alice's


def test_a_caller_past_its_media_limit_gets_429_before_twilio_is_asked(on_azure, monkeypatch):
    """Each fetch costs Twilio two requests and a download: counted per caller."""
    monkeypatch.setenv("RATE_LIMIT_MEDIA_PER_CALLER", "2")
    carol = user(f"carol-{secrets.token_hex(6)}")
    sid = received(on_azure, [("image/png", PNG)], carol)
    assert [media(sid, 0, carol).status_code for _ in range(2)] == [200, 200]
    asked = on_azure.call_soon(lambda: on_azure.sandbox.requests)
    document = refused(media(sid, 0, carol), 429, "rate-limited")
    assert "MMS files fetched by one caller" in document["detail"]
    assert on_azure.call_soon(lambda: on_azure.sandbox.requests) == asked
    assert media(sid, 0).status_code == 404  # alice's count is her own; the MMS is carol's


def test_an_outgoing_message_has_no_media_here(on_azure):
    sid = sent(number(), ALICE)
    refused(media(sid, 0), 404, "not-found")


def test_a_file_over_media_max_bytes_is_refused(on_azure, monkeypatch):
    monkeypatch.setenv("MEDIA_MAX_BYTES", "2048")
    monkeypatch.setenv("VOICEMAIL_ENABLED", "false")  # no recording fits in so few bytes
    sid = received(on_azure, [("image/png", b"x" * 2048), ("image/png", b"x" * 2049)])
    assert media(sid, 0).get_body() == b"x" * 2048
    document = refused(media(sid, 1), 502, "media-too-large")
    assert "2048" in document["detail"]


@pytest.mark.parametrize("kind", ["text/html", "image/svg+xml", "application/xml",
                                  "text/javascript", "application/x-unknown"])
def test_what_a_browser_would_run_goes_out_as_a_download(on_azure, kind):
    page = b"<script>alert(document.domain)</script>"
    sid = received(on_azure, [(kind, page)])
    answer = media(sid, 0)
    assert answer.get_body() == page
    assert answer.headers["Content-Type"] == "application/octet-stream"
    assert answer.headers["Content-Disposition"] == "attachment"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("kind", ["image/jpeg", "audio/amr", "text/vcard", "application/pdf"])
def test_media_a_browser_shows_keep_twilios_type(on_azure, kind):
    sid = received(on_azure, [(kind, b"BEGIN")])
    assert media(sid, 0).headers["Content-Type"] == kind


def test_media_twilio_no_longer_keeps_are_404(on_azure):
    sid = received(on_azure, [("image/png", PNG)])
    on_azure.call_soon(lambda: on_azure.sandbox.media.clear())
    assert "Twilio keeps no such media" in refused(media(sid, 0), 404, "not-found")["detail"]


@pytest.mark.parametrize(("sid", "index", "field"), [
    ("CA" + "0" * 32, "0", "message_sid"), ("MM" + "0" * 31, "0", "message_sid"),
    ("MM" + "A" * 32, "0", "message_sid"), ("MM" + "0" * 32, "10", "n"),
    ("MM" + "0" * 32, "-1", "n"), ("MM" + "0" * 32, "\u0661", "n")])
def test_a_malformed_reference_is_400(on_azure, sid, index, field):
    assert refused(media(sid, index), 400, "invalid-field")["field"] == field


def test_only_get_is_allowed(on_azure):
    answer = media("MM" + "0" * 32, 0, method="POST")
    assert problem(answer)["status"] == 405
    assert answer.headers["Allow"] == "GET"


# --- a MediaUrl that is not Twilio's is never fetched -------------------------------------


#: Status, headers (None: not sent) and body.
Answer = tuple[int, dict[str, str | None], bytes]


class Recorder(http.server.ThreadingHTTPServer):
    """A loopback server that notes the paths it is asked for and answers as ``answer``
    says for each."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.authorized: list[bool] = []  # whether each request carried Authorization
        self.answer: Callable[[str], Answer] = lambda path: (200, {}, b"not Twilio's")
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                recorder.paths.append(self.path)
                recorder.authorized.append("Authorization" in self.headers)
                status, headers, body = recorder.answer(self.path)
                self.send_response(status)
                for name, value in {"Content-Length": str(len(body)), **headers}.items():
                    if value is not None:
                        self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


@contextlib.contextmanager
def serving(tls: ssl.SSLContext | None = None) -> Iterator[Recorder]:
    server = Recorder()
    if tls is not None:  # https://localhost:<port>: another origin than the API's
        server.socket = tls.wrap_socket(server.socket, server_side=True)
        server.url = f"https://localhost:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def elsewhere() -> Iterator[Recorder]:
    with serving() as server:
        yield server


def twilio_path(sid: str, account: str = ACCOUNT_SID) -> str:
    return resources.media_path(account, sid, "ME" + secrets.token_hex(16))


def spoiled_url(sandbox: str, other: str, sid: str, how: str) -> str:
    return {
        "origin": other + twilio_path(sid),
        "account": sandbox + twilio_path(sid, "AC" + "c3" * 16),
        "message": sandbox + twilio_path("MM" + secrets.token_hex(16)),
        "query": sandbox + twilio_path(sid) + "?next=" + other,
        "fragment": sandbox + twilio_path(sid) + "#" + other,
        "not-media": sandbox + twilio_path(sid) + "/../../../../Calls.json",
        "userinfo": f"http://{sandbox[7:]}@{other[7:]}{twilio_path(sid)}",
        "real-twilio": "https://api.twilio.com" + twilio_path(sid),
    }[how]


@pytest.mark.parametrize("how", ["origin", "account", "message", "query", "fragment",
                                 "not-media", "userinfo", "real-twilio"])
def test_a_media_url_pointing_elsewhere_is_never_fetched(on_azure, elsewhere, how):
    """The webhook is signed, but with TWILIO_VALIDATE_SIGNATURE off (or a URL of another
    Twilio base, kept from before) the stored URL is anybody's: the app must not ask it."""
    remote, sid = number(), "MM" + secrets.token_hex(16)
    sent(remote, ALICE)
    url = spoiled_url(on_azure.base_url, elsewhere.url, sid, how)
    assert receive(mms_from(remote, [url], ["image/png"], sid)).status_code == 200
    requests_before = on_azure.call_soon(lambda: on_azure.sandbox.requests)
    document = refused(media(sid, 0), 404, "not-found")
    assert "fetches media from Twilio only" in document["detail"]
    assert elsewhere.paths == []
    assert on_azure.call_soon(lambda: on_azure.sandbox.requests) == requests_before


def metadata(path: str) -> Answer:
    """Twilio's answer to a Media resource's ``.json``."""
    return (200, {"Content-Type": "application/json"}, json.dumps({
        "account_sid": ACCOUNT_SID, "content_type": "image/png", "sid": path[-39:-5],
        "parent_sid": path.split("/")[5], "uri": path,
        "date_created": "Mon, 16 Aug 2010 03:45:01 +0000",
        "date_updated": "Mon, 16 Aug 2010 03:45:01 +0000"}).encode())


def received_from(twilio: Recorder, monkeypatch: pytest.MonkeyPatch) -> str:
    """An MMS whose media ``twilio`` keeps: sent through the sandbox, fetched from it."""
    remote, sid = number(), "MM" + secrets.token_hex(16)
    sent(remote, ALICE)
    url = twilio.url + twilio_path(sid)
    assert receive(mms_from(remote, [url], ["image/png"], sid)).status_code == 200
    monkeypatch.setenv("TWILIO_API_BASE_URL", twilio.url)
    return sid


@pytest.mark.parametrize("location", ["http://127.0.0.1:{port}/cdn/a.png",
                                      "ftp://127.0.0.1:{port}/a.png", ""])
def test_a_redirect_neither_https_nor_to_twilio_is_not_followed(on_azure, elsewhere,
                                                                  monkeypatch, location):
    with serving() as other:
        target = location.format(port=other.server_address[1])
        elsewhere.answer = lambda path: (metadata(path) if path.endswith(".json")
                                         else (302, {"Location": target}, b""))
        sid = received_from(elsewhere, monkeypatch)
        refused(media(sid, 0), 502, "twilio-unavailable")
        assert other.paths == []
    assert [path.endswith(".json") for path in elsewhere.paths] == [True, False]


def test_redirects_on_twilios_origin_are_followed_a_few_times_only(on_azure, elsewhere,
                                                                   monkeypatch):
    elsewhere.answer = lambda path: (metadata(path) if path.endswith(".json")
                                     else (307, {"Location": path + "x"}, b""))
    sid = received_from(elsewhere, monkeypatch)
    refused(media(sid, 0), 502, "twilio-unavailable")
    assert len(elsewhere.paths) == 1 + 1 + MAX_REDIRECTS


def local_https() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A CA of this test's own, and a certificate it signed for ``localhost``: the
    server's context, and a client's trusting that CA alone."""
    now = datetime.now(UTC)

    def certificate(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name,
                    signer: ec.EllipticCurvePrivateKey, ca: bool) -> x509.Certificate:
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                   .issuer_name(issuer).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - timedelta(minutes=5))
                   .not_valid_after(now + timedelta(hours=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                                  critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                       signer.public_key()), critical=False))
        if ca:
            builder = builder.add_extension(x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        else:
            builder = (builder.add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost")]), critical=False)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                               critical=False))
        return builder.sign(signer, hashes.SHA256())

    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(
        ec.SECP256R1())
    ca = certificate("media test CA", ca_key, x509.Name([x509.NameAttribute(
        NameOID.COMMON_NAME, "media test CA")]), ca_key, ca=True)
    leaf = certificate("localhost", leaf_key, ca.subject, ca_key, ca=False)
    pem = serialization.Encoding.PEM
    with tempfile.TemporaryDirectory() as folder:
        chain, key = Path(folder, "chain.pem"), Path(folder, "key.pem")
        chain.write_bytes(leaf.public_bytes(pem) + ca.public_bytes(pem))
        key.write_bytes(leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server.load_cert_chain(chain, key)
    client = ssl.create_default_context(cadata=ca.public_bytes(pem).decode())
    return server, client


def test_the_credentials_go_to_twilios_api_alone_never_where_it_redirects(
        on_azure, elsewhere, monkeypatch):
    """Twilio's API (here ``elsewhere``, plain http on loopback) redirects the content to
    https on another origin, as to its CDN: followed, without the account's credentials."""
    server_tls, client_tls = local_https()
    monkeypatch.setattr(twilio_client, "_SendingConnector",  # the app trusting this CA
                        functools.partial(twilio_client._SendingConnector, ssl=client_tls))
    with serving(server_tls) as cdn:
        cdn.answer = lambda path: (200, {"Content-Type": "image/png"}, PNG)
        elsewhere.answer = lambda path: (metadata(path) if path.endswith(".json")
                                         else (302, {"Location": cdn.url + "/cdn/a.png"}, b""))
        sid = received_from(elsewhere, monkeypatch)
        assert media(sid, 0).get_body() == PNG
        assert (cdn.paths, cdn.authorized) == (["/cdn/a.png"], [False])
    assert elsewhere.authorized == [True, True]  # the metadata and the content, at the API


def test_a_file_without_a_length_is_cut_at_media_max_bytes(on_azure, elsewhere, monkeypatch):
    """No Content-Length to refuse it on: the app stops reading past the limit."""
    monkeypatch.setenv("MEDIA_MAX_BYTES", "4096")
    monkeypatch.setenv("VOICEMAIL_ENABLED", "false")  # no recording fits in so few bytes
    elsewhere.answer = lambda path: (metadata(path) if path.endswith(".json")
                                     else (200, {"Content-Length": None},
                                           b"x" * 100_000))
    sid = received_from(elsewhere, monkeypatch)
    refused(media(sid, 0), 502, "media-too-large")


# --- Twilio's refusals, told as for every other Twilio request ------------------------------


def twilio_error(status: int, code: int) -> Answer:
    return (status, {"Content-Type": "application/json", "Retry-After": "7"}, json.dumps({
        "code": code, "message": "refused", "more_info": "", "status": status}).encode())


@pytest.mark.parametrize("on_json", [True, False], ids=["metadata", "content"])
def test_twilio_limiting_the_rate_is_429_with_its_retry_after(on_azure, elsewhere, monkeypatch,
                                                               on_json):
    elsewhere.answer = lambda path: (
        twilio_error(429, 20429) if path.endswith(".json") == on_json
        else metadata(path) if path.endswith(".json") else (200, {}, PNG))
    sid = received_from(elsewhere, monkeypatch)
    answer = media(sid, 0)
    refused(answer, 429, "twilio-rate-limited")
    assert answer.headers["Retry-After"] == "7"


@pytest.mark.parametrize("on_json", [True, False], ids=["metadata", "content"])
@pytest.mark.parametrize("status", [400, 409, 422])
def test_another_refusal_by_twilio_is_502_not_the_clients_to_fix(on_azure, elsewhere,
                                                                 monkeypatch, status, on_json):
    elsewhere.answer = lambda path: (
        twilio_error(status, 20001) if path.endswith(".json") == on_json
        else metadata(path) if path.endswith(".json") else (200, {}, PNG))
    sid = received_from(elsewhere, monkeypatch)
    assert "retry is safe" in refused(media(sid, 0), 502, "twilio-unavailable")["detail"]
