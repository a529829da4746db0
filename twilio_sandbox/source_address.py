"""Where the sandbox's requests to the app come from: a loopback address of its own.

The app counts callers without a signed-in user by their address (on Azure the
front end's ``X-Forwarded-For``; the local host appends the peer's address the
same way). Connecting from 127.0.0.1, the sandbox would count as the
developer's own curl: the console's "send through the app" and the developer
would share one count and lock each other out. On Azure the app's callers and
Twilio connect from addresses of their own; connecting from ``SOURCE`` makes the
local host see another client too, with no special case in the app.

Linux answers on all of 127.0.0.0/8. macOS has only 127.0.0.1 unless an alias
is added (``sudo ifconfig lo0 alias 127.0.0.2``): there the sandbox keeps the
default address, and says so once. IPv6 has a single loopback address (::1),
so only IPv4 connections move; the local host listens on 127.0.0.1.
"""

import ipaddress
import logging
import socket

import aiohttp

log = logging.getLogger(__name__)

SOURCE = "127.0.0.2"


def available() -> bool:
    """Whether this machine has ``SOURCE`` (Linux does; macOS only with the alias)."""
    try:
        with socket.socket() as probe:
            probe.bind((SOURCE, 0))
    except OSError:
        return False
    return True


def connector() -> aiohttp.TCPConnector:
    """A connector whose IPv4 loopback connections start at ``SOURCE``, if the OS has it."""
    if not available():
        log.warning("the sandbox's requests to the app come from 127.0.0.1, as yours do "
                    "(this OS refuses %s; on macOS: sudo ifconfig lo0 alias %s): they share "
                    "your count under the app's per-address rate limits", SOURCE, SOURCE)
        return aiohttp.TCPConnector()
    return aiohttp.TCPConnector(socket_factory=_socket)


def _socket(addr_info: aiohttp.AddrInfoType) -> socket.socket:
    """A socket for one address ``aiohttp`` tries, bound to ``SOURCE`` when that is loopback."""
    family, kind, proto, _, address = addr_info
    sock = socket.socket(family, kind, proto)
    if family == socket.AF_INET and ipaddress.ip_address(address[0]).is_loopback:
        try:
            sock.bind((SOURCE, 0))
        except OSError:
            sock.close()
            raise
    return sock
