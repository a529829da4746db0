"""Host log output: each line says which function it came from, as Azure's logs do.

A function's ``logging`` calls go to the root logger. Async functions run in
the invocation's own task, so a context variable names the function; sync ones
run in the runtime's thread pool, where that variable is not carried over but
the runtime sets its own invocation id, which is mapped back to the function.
"""

import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TextIO

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from azure_functions_runtime_v1 import invocation_id_cv

LOG_FORMAT = "%(asctime)s %(levelname)s [%(function)s] %(name)s: %(message)s"
HOST = "host"

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

_current_function: ContextVar[str | None] = ContextVar("devhost_function", default=None)
_function_by_invocation: dict[str, str] = {}


@contextmanager
def function_scope(name: str, invocation_id: str) -> Iterator[None]:
    """Attribute the log lines of one invocation to its function."""
    token = _current_function.set(name)
    _function_by_invocation[invocation_id] = name
    try:
        yield
    finally:
        _function_by_invocation.pop(invocation_id, None)
        _current_function.reset(token)


def current_function() -> str | None:
    """The function whose invocation is logging, if any."""
    name = _current_function.get()
    if name is None and (invocation_id := invocation_id_cv.get()):
        name = _function_by_invocation.get(invocation_id)
    return name


class FunctionNameFilter(logging.Filter):
    """Adds ``%(function)s`` to every record: the function's name, or "host"."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.function = current_function() or HOST
        return True


def configure_logging(
    level: int = logging.INFO, stream: TextIO | None = None, *, verbose: bool = False
) -> None:
    """Send all logs, the functions' included, to stderr with the function's name.

    ``verbose`` adds the host's per-invocation lines (``Executing``/``Executed``)
    and the runtime's own, which an ordinary run leaves out as noise.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(FunctionNameFilter())
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The runtime's per-invocation INFO lines ("Function name: ..., Function Type:
    # ...") are worker chatter, not the app's; its warnings and errors stay.
    logging.getLogger("azure.functions").setLevel(logging.INFO if verbose else logging.WARNING)
    logging.getLogger("devhost").setLevel(logging.DEBUG if verbose else level)


def printable(text: str) -> str:
    """``text`` on one line of ASCII: control characters and others escaped, never written raw.

    Client-chosen text (a path with ``%0a``, a NUL) must not start a new,
    convincing log line or put bytes in the log a reader cannot see.
    """
    escaped = _CONTROL.sub(lambda found: f"\\x{ord(found[0]):02x}", text)
    return escaped.encode("ascii", "backslashreplace").decode("ascii")


class AccessLogger(AbstractAccessLogger):
    """One line per request: method, path as sent (no query: it may hold a key), status, time.

    The path is the raw one, escaped: decoding ``%0a`` would end the line.
    """

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        path = request.raw_path.split("?", 1)[0]
        self.logger.info(
            "%s %s %s %.1fms",
            printable(request.method),
            printable(path),
            response.status,
            time * 1000,
        )
