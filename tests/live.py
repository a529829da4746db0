"""The app served for real: ``python -m devhost`` (what ``make run`` runs) as a subprocess.

End-to-end tests, the contract fuzzing and the secret scan talk to it over
HTTP, exactly as a mobile app and Twilio would, and read the sandbox's state
through its control endpoints. Its stderr (every log line of the host, the
functions and the sandbox) is kept for the tests to inspect.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from storage import storage_env

from devhost.host import READY_PREFIX
from devhost.ready import start_and_wait
from twilio_sandbox import READY_PREFIX as SANDBOX_READY_PREFIX

ROOT = Path(__file__).parents[1]
START_TIMEOUT = 60.0
APP_FILES = ("shared", "make_call", "send_sms", "twiml", "host.json")
#: Limits no test trips unless it is about them: every test sends from one address
#: to a few numbers on one account, into one Azurite for the whole session.
ROOMY_LIMITS = {name: "1000000" for name in (
    "RATE_LIMIT_SMS_PER_CALLER", "RATE_LIMIT_CALLS_PER_CALLER", "RATE_LIMIT_PER_DESTINATION",
    "RATE_LIMIT_PER_COUNTRY", "RATE_LIMIT_PER_ACCOUNT", "RATE_LIMIT_VOICE_TOKENS_PER_CALLER",
    "RATE_LIMIT_DEVICES_PER_CALLER")}


def copy_app(target: Path) -> Path:
    """A copy of the function app alone, to add what the repository must not hold."""
    target.mkdir(parents=True, exist_ok=True)
    for name in APP_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, target / name)
    return target


class LiveApp:
    """One running launcher: host on a free port, with the Twilio sandbox.

    Its store is the session's Azurite unless ``env`` names another; its rate limits
    are ``limits`` (none a test trips, unless it is about them).
    """

    def __init__(self, env: dict[str, str], args: tuple[str, ...] = ("--sandbox",),
                 module: str = "devhost", app_dir: Path = ROOT,
                 limits: dict[str, str] = ROOMY_LIMITS) -> None:
        self._log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)  # noqa: SIM115
        env = {**storage_env(), **limits, **env}
        started = start_and_wait(
            [sys.executable, "-m", module, "--app-dir", str(app_dir), "--port", "0", *args],
            env={**os.environ, **env, "PYTHONUNBUFFERED": "1"}, cwd=str(ROOT),
            stderr=self._log, prefixes=(READY_PREFIX, SANDBOX_READY_PREFIX),
            wait_for=READY_PREFIX, timeout=START_TIMEOUT,
        )
        self.process, self.stdout_lines = started.process, started.stdout_lines
        if READY_PREFIX not in started.urls:
            self.stop()
            raise RuntimeError(f"the app did not start:\n{self.log()}")
        self.base_url = started.urls[READY_PREFIX]
        self.sandbox_url = started.urls.get(SANDBOX_READY_PREFIX)

    def log(self) -> str:
        self._log.flush()
        return Path(self._log.name).read_text()

    def stop(self) -> int:
        """Ctrl-C, as a user would; returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    # --- the sandbox's control endpoints -------------------------------------

    def sandbox(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        assert self.sandbox_url is not None
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.sandbox_url}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as response:
            text = response.read()
        return json.loads(text) if text else None

    def state(self) -> dict[str, Any]:
        return self.sandbox("GET", "/_sandbox/state")

    def wait_for(self, predicate: Any, timeout: float = 10.0) -> dict[str, Any]:
        """Poll the sandbox state until ``predicate(state)`` holds."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.state()
            if predicate(state):
                return state
            if time.monotonic() > deadline:
                raise AssertionError(f"sandbox state never matched: {state}")
            time.sleep(0.05)
