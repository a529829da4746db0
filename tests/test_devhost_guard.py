"""What the local host refuses before any function runs, sent over raw sockets.

The host holds real credentials on a developer's machine: it answers only
loopback Host names, never decompresses, caps bodies before reading them,
answers bytes it cannot take with a 400 problem (no traceback), and writes
client-chosen paths into its log escaped.
"""

from __future__ import annotations

import gzip
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict
from test_devhost_host import HANG_GUARD_SECONDS, HostProcess, make_app

from devhost.request_guard import MAX_BODY_BYTES
from localhttp.host_policy import HostPolicy
from localhttp.problem import Refusal


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostProcess]:
    app = make_app(tmp_path_factory.mktemp("guard"))
    running = HostProcess(
        app,
        *("--header-timeout", "2", "--body-timeout", "2"),
        log_dir=tmp_path_factory.mktemp("logs"),
    )
    yield running
    running.stop()


def port(host: HostProcess) -> int:
    return int(host.base_url.rsplit(":", 1)[1])


def exchange(
    host: HostProcess, head: bytes, body: bytes = b""
) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as given; return the status, headers and body of the one response."""
    with socket.create_connection(("127.0.0.1", port(host)), timeout=HANG_GUARD_SECONDS) as sock:
        sock.sendall(head + body)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed without a response: {received!r}"
            received += chunk
        head_bytes, _, rest = received.partition(b"\r\n\r\n")
        lines = head_bytes.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:])
        length = int(headers.get("Content-Length", "0"))
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        return int(lines[0].split()[1]), headers, rest


def problem(status: int, headers: dict[str, str], body: bytes, expected: int) -> dict:
    assert status == expected, body
    assert headers["Content-Type"].startswith("application/problem+json")
    document = json.loads(body)
    assert document["status"] == expected
    assert document["type"] == "about:blank"
    return document


def request(method: str, path: str, *headers: bytes, host: bytes = b"localhost") -> bytes:
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: " + host, *headers, b"Connection: close"]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def peak_memory_kib(host: HostProcess) -> int:
    for line in Path(f"/proc/{host.process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


# --- Host: DNS rebinding ------------------------------------------------------------


@pytest.mark.parametrize("name", [b"localhost", b"LocalHost:7071", b"127.0.0.1:1", b"[::1]:7071"])
def test_loopback_host_names_are_served(host: HostProcess, name: bytes) -> None:
    assert exchange(host, request("GET", "/api/hello", host=name))[0] == 200


@pytest.mark.parametrize(
    "name",
    [b"attacker.example", b"attacker.example:7071", b"localhost.attacker.example", b"10.0.0.1"],
)
def test_other_host_names_are_refused_like_a_rebinding_guard(
    host: HostProcess, name: bytes
) -> None:
    document = problem(*exchange(host, request("GET", "/api/hello", host=name)), 421)
    assert "--allow-host" in document["detail"]


def test_the_policy_follows_the_binding_and_the_allowed_names() -> None:
    def allows(policy: HostPolicy, name: str) -> bool:
        try:
            policy.check(make_mocked_request("GET", "/", headers=CIMultiDict(Host=name)))
        except Refusal as refusal:
            assert refusal.status == 421
            return False
        return True

    assert not allows(HostPolicy.for_binding("127.0.0.1"), "attacker.example")
    assert not allows(HostPolicy.for_binding("::1"), "attacker.example")
    assert allows(HostPolicy.for_binding("127.0.0.1", ["tunnel.example"]), "TUNNEL.example:443")
    assert allows(HostPolicy.for_binding("127.0.0.1", ["*"]), "attacker.example")
    assert allows(HostPolicy.for_binding("0.0.0.0"), "attacker.example")  # noqa: S104
    assert allows(HostPolicy.for_binding("192.168.1.20"), "devbox.lan")


# --- bodies: capped before they are read, never decompressed -----------------------------


def test_a_gzip_bomb_is_refused_without_inflating_it(host: HostProcess) -> None:
    bomb = gzip.compress(bytes(100 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 200 * 1024
    before = peak_memory_kib(host)
    for _ in range(4):
        head = request(
            "POST",
            "/api/echo",
            b"Content-Type: application/json",
            b"Content-Encoding: gzip",
            f"Content-Length: {len(bomb)}".encode(),
        )
        status, headers, body = exchange(host, head, bomb)
        assert problem(status, headers, body, 415)["detail"].startswith("Content-Encoding")
        assert headers["Accept-Encoding"] == "identity"
    grown_mib = (peak_memory_kib(host) - before) / 1024
    assert grown_mib < 20, f"the host's peak memory grew by {grown_mib:.0f} MiB"


def test_a_declared_length_over_the_cap_is_refused_before_the_body_is_sent(
    host: HostProcess,
) -> None:
    head = request("POST", "/api/echo", f"Content-Length: {100 * 1024 * 1024}".encode())
    status, headers, body = exchange(host, head)  # no body sent at all
    assert str(MAX_BODY_BYTES) in problem(status, headers, body, 413)["detail"]


def test_a_chunked_body_is_cut_off_at_the_cap(host: HostProcess) -> None:
    chunk = b"x" * 65536
    framed = (b"%x\r\n" % len(chunk) + chunk + b"\r\n") * (MAX_BODY_BYTES // len(chunk) + 2)
    head = request("POST", "/api/echo", b"Transfer-Encoding: chunked")
    problem(*exchange(host, head, framed + b"0\r\n\r\n"), 413)


def test_a_body_at_the_cap_reaches_the_function(host: HostProcess) -> None:
    body = b"y" * MAX_BODY_BYTES
    head = request("POST", "/api/echo", f"Content-Length: {len(body)}".encode())
    status, _, answer = exchange(host, head, body)
    assert status == 200
    assert json.loads(answer)["body_base64"]


def test_a_slow_request_head_is_not_held_open(host: HostProcess) -> None:
    with socket.create_connection(("127.0.0.1", port(host)), timeout=HANG_GUARD_SECONDS) as sock:
        sock.sendall(b"GET /api/hello HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        started = time.monotonic()
        for _ in range(HANG_GUARD_SECONDS):  # one header byte a second, never finishing
            try:
                sock.sendall(b"a")
            except OSError:
                break
            sock.settimeout(1)
            try:
                if sock.recv(1) == b"":
                    break
            except TimeoutError:
                continue
            except ConnectionResetError:  # closed with our unread bytes pending: an RST
                break
        assert time.monotonic() - started < HANG_GUARD_SECONDS / 2, "the host held the connection"


def test_a_body_that_does_not_arrive_in_time_is_refused(host: HostProcess) -> None:
    head = request("POST", "/api/echo", b"Content-Length: 100")
    problem(*exchange(host, head, b"only part of it"), 408)  # the rest never comes


def test_a_transfer_coding_other_than_chunked_is_not_taken(host: HostProcess) -> None:
    head = request("POST", "/api/echo", b"Transfer-Encoding: gzip, chunked")
    problem(*exchange(host, head, b"0\r\n\r\n"), 501)


# --- bytes it cannot take: 400 with a problem, no traceback ------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        request("GET", "/api/hello", b"X-Twilio-Signature: \xff\xfe"),
        request("GET", "/api/hello", host=b"\xff"),
        request("GET", "/api/hello", b"X-Ctl: a\x01b"),
        b"GET /api/\xff HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        b"GET /api/hello HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n",
        request("POST", "/api/echo", b"Content-Length: 12x"),
        request("GET", "/api/hello?x=\xff"),
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",  # TLS to the HTTP port
        request("GET", "/api/hello", b"X-Long: " + b"a" * 20000),
    ],
    ids=[
        "signature-ff-fe",
        "host-ff",
        "control-byte",
        "path-ff",
        "two-hosts",
        "bad-length",
        "query-ff",
        "tls",
        "long-header",
    ],
)
def test_bytes_it_cannot_take_get_a_400_problem_and_no_traceback(
    host: HostProcess, raw: bytes
) -> None:
    problem(*exchange(host, raw), 400)
    assert exchange(host, request("GET", "/api/hello"))[0] == 200  # the host still serves
    assert "Traceback" not in host.stderr()


def test_a_garbage_deflate_body_is_refused_unread(host: HostProcess) -> None:
    body = b"\x00garbage, not deflate\xff"
    head = request(
        "POST", "/api/echo", b"Content-Encoding: deflate", f"Content-Length: {len(body)}".encode()
    )
    problem(*exchange(host, head, body), 415)
    assert "Traceback" not in host.stderr()


# --- the access log cannot be forged ----------------------------------------------------


def test_the_access_log_escapes_what_a_path_carries(host: HostProcess) -> None:
    forged = "2026-01-01 00:00:00,000 INFO [host] aiohttp.access: POST /api/make_call 201"
    path = "/api/x%0a" + forged.replace(" ", "%20") + "%00%0d%1b"
    assert exchange(host, request("GET", path))[0] == 404
    escaped = b"GET /api/x%0a2026-01-01%2000:00:00"
    deadline = time.monotonic() + 10  # aiohttp logs the access after the response is sent
    while escaped not in (log := host.stderr_path.read_bytes()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert b"\x00" not in log
    assert not any(line.startswith(forged.encode()[:30]) for line in log.splitlines())
    assert escaped in log
