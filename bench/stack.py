"""The processes under measurement: the Twilio sandbox and the Functions host.

Each runs as its own process, as in production the host and Twilio are apart:
the load generator, the host and the sandbox never share an event loop or a
GIL. A child announces its URL with one ready line on stdout (what
``tests/live.py`` waits for too); its log goes to a file, shown when it fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench.app import ROOT
from devhost import children
from devhost.host import READY_PREFIX
from shared.settings import DECLARATIONS
from twilio_sandbox import READY_PREFIX as SANDBOX_READY_PREFIX

HOST_READY = f"{READY_PREFIX} "
SANDBOX_READY = f"{SANDBOX_READY_PREFIX} "
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
#: What every request to the sandbox's controls carries, a body-less one too.
JSON_TYPE = {"Content-Type": "application/json"}
VALID_FROM = "+15005550006"  # the sandbox's (and Twilio's test credentials') valid sender


class BenchError(Exception):
    """The benchmark could not run (a process did not start, a request failed)."""


@dataclass(frozen=True)
class Account:
    """Throwaway credentials shared by the sandbox, the host and the direct client."""

    sid: str
    token: str

    @classmethod
    def random(cls) -> Account:
        return cls("AC" + secrets.token_hex(16), secrets.token_hex(16))


class Child:
    """A child process that prints ``<prefix><url>`` once it serves."""

    def __init__(self, process: asyncio.subprocess.Process, url: str, log_path: Path) -> None:
        self.process = process
        self.url = url
        self.log_path = log_path
        self._drain = asyncio.create_task(self._discard_stdout())

    @classmethod
    async def spawn(
        cls, argv: list[str], *, cwd: Path, env: dict[str, str], ready: str, log_path: Path
    ) -> Child:
        with log_path.open("wb") as log:
            process = await children.start_async(
                *argv, cwd=cwd, env=env, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=log,
            )
        try:
            url = await asyncio.wait_for(_ready_url(process, ready), START_TIMEOUT)
        except TimeoutError:
            await _end(process)
            raise BenchError(f"{argv[2]} printed no ready line within {START_TIMEOUT:.0f} s:\n"
                             f"{tail(log_path)}") from None
        except BenchError as error:
            raise BenchError(f"{argv[2]} {error}:\n{tail(log_path)}") from None
        except BaseException:  # cancelled (Ctrl-C): leave no process behind
            await _end(process)
            raise
        return cls(process, url, log_path)

    async def _discard_stdout(self) -> None:
        """Keep the pipe flowing (the runtime flushes stdout on every invocation)."""
        assert self.process.stdout is not None
        while await self.process.stdout.read(65536):
            pass

    def rss_kib(self) -> int:
        """Resident memory now, from /proc (Linux)."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise BenchError("no VmRSS in /proc status")

    def cpu_seconds(self) -> tuple[float, float]:
        """User and system CPU time used so far, from /proc (Linux; 10 ms ticks)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        return int(fields[11]) / tick, int(fields[12]) / tick

    async def stop(self) -> None:
        """SIGTERM (both children stop cleanly on it), then SIGKILL if it hangs."""
        await _end(self.process)
        self._drain.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._drain


async def _ready_url(process: asyncio.subprocess.Process, prefix: str) -> str:
    assert process.stdout is not None
    while line := await process.stdout.readline():
        text = line.decode(errors="replace")
        if text.startswith(prefix):
            return text[len(prefix):].strip()
    raise BenchError(f"exited with status {await process.wait()}")


async def _end(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class Sandbox(Child):
    """``python -m twilio_sandbox``, read and steered through ``/_sandbox``."""

    @classmethod
    async def start(cls, account: Account, log_path: Path) -> Sandbox:
        # No TwiML fetches nor status callbacks: they would load the host during the
        # figures (status_callback has a figure of its own).
        argv = [sys.executable, "-m", "twilio_sandbox", "--account-sid", account.sid,
                "--auth-token", account.token, "--port", "0", "--no-fetch-twiml",
                "--no-status-callbacks", "--log-level", "WARNING"]
        child = await cls.spawn(argv, cwd=ROOT, env=dict(os.environ), ready=SANDBOX_READY,
                                log_path=log_path)
        assert isinstance(child, Sandbox)
        return child

    _session: aiohttp.ClientSession | None = None

    async def _control(self, method: str, path: str, body: Any = None) -> Any:
        # One kept-alive connection for every control request: a new one each time
        # would add to the connections_accepted the figures read.
        if self._session is None:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1))
        async with self._session.request(  # JSON, a body-less one too: the sandbox's rule
            method, f"{self.url}/_sandbox/{path}", json=body, headers=JSON_TYPE
        ) as response:
            if response.status >= 400:
                raise BenchError(f"sandbox {method} {path}: {response.status}")
            return await response.json() if response.status != 204 else None

    async def state(self) -> dict[str, Any]:
        return await self._control("GET", "state")

    async def set_latency(self, seconds: float) -> None:
        await self._control("PUT", "latency", {"seconds": seconds})

    async def reset(self) -> None:
        """Forget resources and counters (latency stays)."""
        await self._control("POST", "reset")

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        await super().stop()


def app_environment(account: Account, sandbox_url: str, storage: str) -> dict[str, str]:
    """The environment of a host: only the settings named here, whatever the shell has.

    The store is on (``storage``, a connection string), as deployed: every send
    records its SID before answering.
    """
    # PYTHONDONTWRITEBYTECODE off: every cold start then reads the bytecode the first
    # (unmeasured) run wrote, as a deployed app's packages do, instead of compiling.
    dropped = {d.name for d in DECLARATIONS} | {"PYTHONDONTWRITEBYTECODE"}
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update({
        "TWILIO_ACCOUNT_SID": account.sid,
        "TWILIO_AUTH_TOKEN": account.token,
        "TWILIO_FROM_NUMBER": VALID_FROM,
        "TWILIO_API_BASE_URL": sandbox_url,
        # Signatures stay checked: the benchmark signs its twiml requests as Twilio does.
        "TWILIO_VALIDATE_SIGNATURE": "true",
        "STATE_STORAGE": storage,
        "ALLOWED_COUNTRIES": "US",  # as the deploy guide has it: TO is a US number
        # Rate limits off: every figure sends thousands of requests from one address;
        # bench/store_checks.py measures the sends with the limits counted.
        **dict.fromkeys(("RATE_LIMIT_SMS_PER_CALLER", "RATE_LIMIT_CALLS_PER_CALLER",
                         "RATE_LIMIT_PER_DESTINATION", "RATE_LIMIT_PER_COUNTRY",
                         "RATE_LIMIT_PER_ACCOUNT"), "0"),
        # The app folder first on sys.path (its shared/), devhost from the repository.
        "PYTHONPATH": str(ROOT),
    })
    return env


class Host(Child):
    """``python -m devhost.host --app-dir DIR --port 0``, as ``make run`` serves the app."""

    @classmethod
    async def start(cls, app_dir: Path, env: dict[str, str], log_path: Path) -> Host:
        argv = [sys.executable, "-m", "devhost.host", "--app-dir", str(app_dir), "--port", "0"]
        child = await cls.spawn(argv, cwd=app_dir, env=env, ready=HOST_READY, log_path=log_path)
        assert isinstance(child, Host)
        return child
