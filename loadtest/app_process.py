"""The app under load: ``python -m devhost --sandbox`` in a child process, on loopback.

Started the way ``make run`` (and the tests' ``LiveApp``) starts it, so the load
meets the real launcher, the v1 runtime and the in-process Twilio sandbox. The
app runs in its own process so that the load client never shares its event
loop or GIL. The child's stderr (host, functions and sandbox logs, one
stream) is kept in a temporary file for the checks to read; it is deleted on
``stop``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Self

from devhost.host import READY_PREFIX
from devhost.ready import start_and_wait
from twilio_sandbox import READY_PREFIX as SANDBOX_READY_PREFIX
from twilio_sandbox.state import DEFAULT_HISTORY

ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = "127.0.0.1"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0

#: App settings pinned for the run, so a developer's local.settings.json (which the
#: host applies for every variable not already set) cannot change the expected answers.
PINNED_SETTINGS = {
    "ALLOWED_COUNTRIES": "",
    "ALLOW_PREMIUM_NUMBERS": "false",
    "TWILIO_VALIDATE_SIGNATURE": "true",
    "SMS_REPLY_MESSAGE": "",
    # The mixed run sends 1,000 requests from one address to a few numbers: no limit
    # applies to it (0); the pumping profile sets its own.
    **{name: "0" for name in ("RATE_LIMIT_SMS_PER_CALLER", "RATE_LIMIT_CALLS_PER_CALLER",
                              "RATE_LIMIT_PER_DESTINATION", "RATE_LIMIT_PER_COUNTRY",
                              "RATE_LIMIT_PER_ACCOUNT")},
}


class AppError(RuntimeError):
    """The app did not start (its log is in the message)."""


class AppProcess:
    """One launcher process: the host on a free loopback port, with the Twilio sandbox.

    ``env`` is added to this process's environment (the pinned settings first, so
    ``env`` may set its own rate limits); with ``enforce_keys`` the host
    requires ``FUNCTIONS_LOCAL_KEY`` from it for the keyed functions. The sandbox
    keeps at least ``sandbox_history`` messages and calls (each); with ``sandbox_url``
    the host uses that running sandbox instead of starting its own.
    """

    def __init__(self, env: dict[str, str], *, enforce_keys: bool = False,
                 app_dir: Path = ROOT, sandbox_history: int = DEFAULT_HISTORY,
                 auth: bool = False, sandbox_url: str | None = None) -> None:
        self._env = {**os.environ, **PINNED_SETTINGS, **env, "PYTHONUNBUFFERED": "1"}
        # Its own sandbox, or one that already serves (``env`` then names its account).
        sandbox = (["--sandbox-url", sandbox_url] if sandbox_url else
                   ["--sandbox", "--sandbox-history", str(max(sandbox_history, DEFAULT_HISTORY))])
        self._args = [*sandbox, "--host", LOOPBACK, "--port", "0"]
        if enforce_keys:
            self._args.append("--enforce-keys")
        if auth:  # App Service Authentication emulated: Bearer dev:<user> signs a user in
            self._args.append("--auth")
        self._app_dir = app_dir
        self._log_file = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in stop()
            "w+", prefix="loadtest-", suffix=".log", delete=False, encoding="utf-8")
        self.process: subprocess.Popen[str] | None = None
        self.stdout_lines: list[str] = []
        self.base_url = ""
        self.sandbox_url = ""
        self._log_text: str | None = None

    def start(self) -> Self:
        """Start the launcher and wait (bounded) for both ready lines."""
        started = start_and_wait(
            [sys.executable, "-m", "devhost", "--app-dir", str(self._app_dir), *self._args],
            env=self._env, cwd=str(ROOT), stderr=self._log_file,  # it changes to the app
            prefixes=(READY_PREFIX, SANDBOX_READY_PREFIX), wait_for=READY_PREFIX,
            timeout=START_TIMEOUT,
        )
        self.process, self.stdout_lines = started.process, started.stdout_lines
        if not {READY_PREFIX, SANDBOX_READY_PREFIX} <= started.urls.keys():
            self.stop()
            raise AppError(f"the app did not start:\n{self.log()}")
        self.base_url = started.urls[READY_PREFIX]
        self.sandbox_url = started.urls[SANDBOX_READY_PREFIX]
        for url in (self.base_url, self.sandbox_url):
            if not url.startswith((f"http://{LOOPBACK}:", "http://localhost:")):
                self.stop()
                raise AppError(f"refusing to load a non-loopback address: {url}")
        return self

    def stop(self) -> int | None:
        """Ctrl-C, as a user would (kill if it hangs); keep the log; returns the exit status."""
        status = None
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGINT)
                try:
                    self.process.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
            status = self.process.returncode
        if self._log_text is None:
            self._log_text = self._read_log()
            self._log_file.close()
            Path(self._log_file.name).unlink(missing_ok=True)
        return status

    def log(self) -> str:
        """Everything the app logged so far (all of it once stopped)."""
        return self._log_text if self._log_text is not None else self._read_log()

    def _read_log(self) -> str:
        self._log_file.flush()
        return Path(self._log_file.name).read_text(encoding="utf-8", errors="replace")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
