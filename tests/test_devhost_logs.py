"""The local host's log lines: the same text as before, at a worker's cost.

Lines are written in batches (one write per pass of the event loop), an
invocation's own when it ends, before its answer goes out; the text is
``LOG_FORMAT``'s exactly, and what the format never shows is not gathered.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterator

import pytest

from devhost.logs import LOG_FORMAT, FunctionNameFilter, configure_logging, function_scope


class Writes(io.StringIO):
    """A stream that counts its writes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


@pytest.fixture
def stream() -> Iterator[Writes]:
    """The host's logging configured onto a counting stream; the test process's put back."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logging._srcfile, logging.logThreads,
             logging.logProcesses, logging.logMultiprocessing, logging.logAsyncioTasks)
    levels = {name: logging.getLogger(name).level for name in ("azure.functions", "devhost")}
    output = Writes()
    configure_logging(stream=output)
    try:
        yield output
    finally:
        (root.handlers[:], level, logging._srcfile, logging.logThreads, logging.logProcesses,
         logging.logMultiprocessing, logging.logAsyncioTasks) = saved
        root.setLevel(level)
        for name, named_level in levels.items():
            logging.getLogger(name).setLevel(named_level)


def test_lines_read_as_the_plain_formatter_wrote_them(stream: Writes) -> None:
    plain = logging.Formatter(LOG_FORMAT)
    handler = logging.getLogger().handlers[0]
    log = logging.getLogger("twilio_functions.test")
    records: list[logging.LogRecord] = []
    keep = logging.Handler()
    keep.emit = records.append  # type: ignore[method-assign]
    log.addHandler(keep)
    try:
        log.warning("function=%s status=%d", "twiml", 403)
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            log.exception("failed")
    finally:
        log.removeHandler(keep)
    for record in records:
        FunctionNameFilter().filter(record)
        assert handler.format(record) == plain.format(record)
    assert "function=twiml status=403" in stream.getvalue()
    assert "RuntimeError: boom" in stream.getvalue()  # the traceback, as before


def test_an_invocations_lines_are_written_when_it_ends_in_one_write(stream: Writes) -> None:
    log = logging.getLogger("twilio_functions.test")

    async def invocation() -> tuple[str, int, str]:
        with function_scope("twiml", "invocation-1"):
            log.info("first")
            log.info("second")
            during = stream.getvalue()
        return during, stream.writes, stream.getvalue()

    during, writes, after = asyncio.run(invocation())
    assert during == ""  # nothing written line by line
    assert writes == 1
    assert "INFO [twiml] twilio_functions.test: first\n" in after
    assert after.index("first") < after.index("second")


def test_host_lines_of_one_pass_go_out_together_by_its_end(stream: Writes) -> None:
    log = logging.getLogger("aiohttp.access")

    async def serve() -> tuple[str, str, int]:
        for n in range(5):
            log.info("GET /api/hello 200 %d", n)
        before = stream.getvalue()
        await asyncio.sleep(0)  # the pass ends: its flush was queued before this wakes
        return before, stream.getvalue(), stream.writes

    before, after, writes = asyncio.run(serve())
    assert before == ""
    assert writes == 1 and after.count("[host] aiohttp.access: GET /api/hello 200") == 5


def test_without_a_running_loop_a_line_is_written_at_once(stream: Writes) -> None:
    logging.getLogger("devhost.test").warning("no loop")
    assert "WARNING [host] devhost.test: no loop" in stream.getvalue()


def test_what_the_format_never_shows_is_not_gathered(stream: Writes) -> None:
    records: list[logging.LogRecord] = []
    keep = logging.Handler()
    keep.emit = records.append  # type: ignore[method-assign]
    log = logging.getLogger("devhost.test")
    log.addHandler(keep)
    try:
        log.warning("shown")
    finally:
        log.removeHandler(keep)
    (record,) = records
    assert (record.lineno, record.threadName, record.processName, record.process) == (
        0, None, None, None)  # no walk up the stack for the caller's line
