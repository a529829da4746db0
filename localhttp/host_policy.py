"""Which ``Host`` names a local server answers: loopback ones, unless told otherwise.

A server bound to loopback on a developer's machine (the Functions host, the
Twilio sandbox) serves only ``localhost``, ``127.0.0.1`` and ``[::1]`` (any
port) and names it was given, so that a web page cannot reach it through DNS
rebinding; bound elsewhere, it answers any name.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from aiohttp import web

from localhttp.problem import Refusal

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})
ANY_HOST = "*"
_HOST = re.compile(r"(?P<name>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(?P<port>[0-9]{1,5}))?")
#: The ports a URL may name (RFC 6335): 0 is no port a client reaches, 65536 none at all.
PORTS = range(1, 65536)


def is_loopback_address(address: str) -> bool:
    """Whether binding ``address`` serves this machine only."""
    if address.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


HOST_ADVICE = ("Behind a tunnel or proxy, set PUBLIC_BASE_URL to its URL or start the host "
               "with --allow-host NAME.")


class HostPolicy:
    """Which ``Host`` names a server answers; ``None`` names: any. ``advice``: what a
    refused client can do about it."""

    def __init__(self, names: Iterable[str] | None, advice: str = HOST_ADVICE) -> None:
        self.names = None if names is None else frozenset(n.lower() for n in names)
        self.advice = advice

    @classmethod
    def for_binding(cls, address: str, extra: Iterable[str] = (),
                    advice: str = HOST_ADVICE) -> HostPolicy:
        extra = [name for name in extra if name]
        if ANY_HOST in extra or not is_loopback_address(address):
            return cls(None, advice)
        return cls(LOOPBACK_NAMES | set(extra), advice)

    def check(self, request: web.BaseRequest) -> None:
        values = request.headers.getall("Host", [])
        if len(values) != 1:
            raise Refusal(400, "The request needs exactly one Host header.")
        found = _HOST.fullmatch(values[0])
        if found is None:
            raise Refusal(400, "The Host header is not a host name with an optional port.")
        if found["port"] is not None and int(found["port"]) not in PORTS:
            # The URLs built from it (TwiML, callbacks) would name a port nobody can reach.
            raise Refusal(400, "The Host header's port is not one from 1 to 65535.")
        if self.names is not None and found["name"].lower() not in self.names:
            raise Refusal(
                421,
                "This local server answers localhost, 127.0.0.1 and [::1] only (a page "
                f"elsewhere must not reach it by DNS rebinding). {self.advice}",
            )
