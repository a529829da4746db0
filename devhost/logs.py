"""Host log output: each line says which function it came from, as Azure's logs do.

A function's ``logging`` calls go to the root logger. Async functions run in
the invocation's own task, so a context variable names the function; sync ones
run in the runtime's thread pool, where that variable is not carried over but
the runtime sets its own invocation id, which is mapped back to the function.

On Azure the worker hands each line to the host, which writes it out of the
worker's way (another process). Here host and worker share a process, so a
line's cost is kept to what the worker's is: lines are formatted without
re-rendering the same second's time stamp, and written in batches, one write
per pass of the event loop, not one (and a flush) each. An invocation's lines
are written when it ends, before its answer is sent, so whoever reads the
output after an answer finds them.
"""

import asyncio
import logging
import re
import sys
import time
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
    """Attribute the log lines of one invocation to its function; write them when it ends."""
    token = _current_function.set(name)
    _function_by_invocation[invocation_id] = name
    try:
        yield
    finally:
        _function_by_invocation.pop(invocation_id, None)
        _current_function.reset(token)
        if _handler is not None and _handler.pending:
            _handler.flush()


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
    global _handler  # the one the invocations flush
    handler = _handler = BatchedStreamHandler(stream or sys.stderr)
    handler.addFilter(FunctionNameFilter())
    handler.setFormatter(LineFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The runtime's per-invocation INFO lines ("Function name: ..., Function Type:
    # ...") are worker chatter, not the app's; its warnings and errors stay.
    logging.getLogger("azure.functions").setLevel(logging.INFO if verbose else logging.WARNING)
    logging.getLogger("devhost").setLevel(logging.DEBUG if verbose else level)
    # What LOG_FORMAT never shows is not gathered for each record either: the caller's
    # file and line (a walk up the stack), thread, process and task names (the logging
    # documentation's "Optimization" section). Azure's worker ships none of them.
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging.logAsyncioTasks = False


class LineFormatter(logging.Formatter):
    """``LOG_FORMAT``'s lines, the time stamp's date and time rendered once a second.

    A record with an exception or a stack goes through ``logging.Formatter``, unchanged.
    """

    def __init__(self) -> None:
        super().__init__(LOG_FORMAT)
        self._second: tuple[int, str] = (-1, "")

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info or record.exc_text or record.stack_info:
            return super().format(record)
        second, stamp = self._second
        if int(record.created) != second:  # a tuple: threads never see half of it
            second = int(record.created)
            stamp = time.strftime(self.default_time_format, self.converter(record.created))
            self._second = (second, stamp)
        function = getattr(record, "function", HOST)
        return (f"{stamp},{int(record.msecs):03d} {record.levelname} [{function}] "
                f"{record.name}: {record.getMessage()}")


class BatchedStreamHandler(logging.StreamHandler[TextIO]):
    """A ``StreamHandler`` that writes the lines of one pass of the event loop at once.

    A line logged on the loop's thread waits for the end of the pass (or of its
    invocation, ``function_scope``); from any other thread, or with no loop
    running, it is written at once with whatever waits. ``flush`` (which
    ``logging.shutdown`` calls at exit) writes what is left.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self.pending: list[str] = []
        # The loop a flush is due on: a loop that ended before its pass did is no promise.
        self._flush_on: asyncio.AbstractEventLoop | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # as logging.StreamHandler: reported, never raised
            self.handleError(record)
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        with self.lock:  # type: ignore[union-attr]  # created by Handler.__init__
            self.pending.append(line)
            # An invocation's own lines are written when it ends (function_scope).
            if (loop is not None and self._flush_on is not loop
                    and _current_function.get() is None):
                self._flush_on = loop
                loop.call_soon(self.flush)
        if loop is None:
            self.flush()

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._flush_on = None
            if not self.pending:
                return
            text = self.terminator.join(self.pending) + self.terminator
            self.pending.clear()
            try:
                self.stream.write(text)
                self.stream.flush()
            except (OSError, ValueError):  # the stream is gone (closed, a broken pipe)
                pass


_handler: BatchedStreamHandler | None = None


def printable(text: str) -> str:
    """``text`` on one line of ASCII: control characters and others escaped, never written raw.

    Client-chosen text (a path with ``%0a``, a NUL) must not start a new,
    convincing log line or put bytes in the log a reader cannot see.
    """
    if text.isascii() and text.isprintable():  # nothing to escape: most paths, every method
        return text
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
