"""Starting a dev process and waiting for the line it prints once it serves.

The host, the sandbox and the launcher each print one ready line with their
URL on stdout (``READY_PREFIX`` of ``devhost.host`` and
``twilio_sandbox``); whoever starts them (tests, the load test)
waits for those lines, bounded, instead of polling ports. The process ends
when its starter does, however that ends (``devhost.children``).
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Sequence
from typing import IO, Any

from devhost import children


class Started:
    """A child process, the URLs its ready lines announced, and all it printed."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.urls: dict[str, str] = {}
        self.stdout_lines: list[str] = []


def start_and_wait(command: Sequence[str], *, env: dict[str, str], cwd: str,
                   stderr: IO[str], prefixes: Sequence[str], wait_for: str,
                   timeout: float) -> Started:
    """Start ``command``; return once a line starting with ``wait_for`` was printed.

    ``urls`` maps each of ``prefixes`` seen so far to the rest of its line; it
    lacks ``wait_for`` when the process ended or the timeout passed first (the
    caller reports that with the log).
    """
    started = Started(children.start(
        command, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=stderr, text=True,
    ))
    ready = threading.Event()

    def read() -> None:
        assert started.process.stdout is not None
        for line in started.process.stdout:
            started.stdout_lines.append(line)
            for prefix in prefixes:
                if line.startswith(prefix + " "):
                    started.urls[prefix] = line[len(prefix) + 1:].strip()
            if wait_for in started.urls:
                ready.set()
        ready.set()  # stdout closed: the process ended

    threading.Thread(target=read, name="ready lines", daemon=True).start()
    ready.wait(timeout)
    return started


def end(process: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it has not ended within ``timeout`` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)
