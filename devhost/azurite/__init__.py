"""Azurite's Table service, Microsoft's Azure Storage emulator, as a child process.

``make run`` keeps its data under ``.azurite/`` (gitignored) so a restart keeps
the history; the tests run it in memory on a free port. It is installed by
``devhost/azurite/install.sh`` (``make run`` and ``make test`` call it) into
``.cache/azurite``.

    with Azurite.start() as azurite:              # in memory, free port
        os.environ["STATE_STORAGE"] = azurite.connection_string

While one serves a data folder it leaves its port there (``SERVING_FILE``), so
another process reaches it (``serving``) instead of starting a second Azurite
over the same files, which would overwrite each other's data.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Self

from devhost import children
from devhost.ready import end

ROOT = Path(__file__).resolve().parents[2]
EXECUTABLE = ROOT / ".cache" / "azurite" / "node_modules" / ".bin" / "azurite-table"
INSTALL = "sh devhost/azurite/install.sh"
#: Azurite's development account and its well-known key (published by Microsoft).
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/"
               "K1SZFPTOtr/KBHBeksoGMGw==")
#: Where ``UseDevelopmentStorage=true`` expects the table service.
DEFAULT_PORT = 10002
START_TIMEOUT = 20.0
#: Seconds Azurite gets to save its data and exit once it has its SIGINT.
STOP_GRACE = 10.0
#: In a data folder while an Azurite started here serves it: where it answers.
SERVING_FILE = "serving.json"


class AzuriteError(RuntimeError):
    """Azurite is not installed, or did not start."""


def is_installed() -> bool:
    return EXECUTABLE.is_file()


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as probe:
        return probe.connect_ex((host, port)) == 0


def connection_string(host: str, port: int) -> str:
    """A connection string for the Azurite on ``host:port`` (the development account)."""
    return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"TableEndpoint={_endpoint(host, port)};")


def serving(location: Path) -> str | None:
    """The connection string of the Azurite that serves ``location``, if one answers."""
    found = _serving_at(location)
    return connection_string(*found) if found and _answers(*found) else None


def _serving_at(location: Path) -> tuple[str, int] | None:
    """Where ``SERVING_FILE`` in ``location`` says an Azurite answers, if it says."""
    try:
        found = json.loads((location / SERVING_FILE).read_text())
        return str(found["host"]), int(found["port"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _endpoint(host: str, port: int) -> str:
    return f"http://{host}:{port}/{ACCOUNT}"


def _answers(host: str, port: int) -> bool:
    """Whether Azurite's table service answers there (403 without credentials, by name)."""
    url = f"{_endpoint(host, port)}/Tables"
    try:
        with urllib.request.urlopen(url, timeout=1) as answer:  # noqa: S310
            server = answer.headers.get("Server", "")
    except urllib.error.HTTPError as answer:
        server = answer.headers.get("Server", "")
    except OSError:
        return False
    return server.startswith("Azurite")


def _sigint_state(pid: int) -> tuple[bool, bool] | None:
    """Whether process ``pid`` has a SIGINT pending, and whether it catches SIGINT, as
    Linux's ``/proc/<pid>/status`` says; None elsewhere (or if it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    bit = 1 << (signal.SIGINT - 1)
    try:
        pending = (int(fields["SigPnd"], 16) | int(fields["ShdPnd"], 16)) & bit
        caught = int(fields["SigCgt"], 16) & bit
    except (KeyError, ValueError):
        return None
    return bool(pending), bool(caught)


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


class Azurite:
    """One running ``azurite-table``; ``stop()`` (or leaving ``with``) ends it."""

    def __init__(self, process: subprocess.Popen[bytes], host: str, port: int,
                 workdir: Path | None, location: Path | None = None) -> None:
        self.process = process
        self.host = host
        self.port = port
        self._workdir = workdir  # the empty folder an in-memory instance runs in
        self._location = location  # the data folder it serves, if any

    @classmethod
    def start(cls, *, location: Path | None = None, port: int = 0,
              host: str = "127.0.0.1", log: Path | None = None) -> Azurite:
        """Start it (in memory unless ``location``), return once it answers HTTP.

        ``port`` 0 picks a free one (Azurite itself would not say which).
        """
        if not is_installed():
            raise AzuriteError(f"Azurite is not installed at {EXECUTABLE}: run `{INSTALL}` "
                               "(needs node and npm)")
        attempts = 3 if port == 0 else 1
        for attempt in range(attempts):
            chosen = port or _free_port(host)
            workdir = None
            if location is None:  # --inMemoryPersistence refuses --location; run in an empty dir
                workdir = Path(tempfile.mkdtemp(prefix="azurite-"))
                storage = ["--inMemoryPersistence"]
            else:
                location.mkdir(parents=True, exist_ok=True)
                storage = ["--location", str(location)]
            command = [str(EXECUTABLE), "--tableHost", host, "--tablePort", str(chosen),
                       *storage, "--skipApiVersionCheck", "--disableTelemetry", "--silent"]
            output = log.open("ab") if log else subprocess.DEVNULL
            try:
                # node itself (the launcher is #!/usr/bin/env node): it ends with its starter.
                process = children.start(
                    command, cwd=workdir or location, stdin=subprocess.DEVNULL,
                    stdout=output, stderr=subprocess.STDOUT)
            finally:
                if log:
                    output.close()  # type: ignore[union-attr]
            azurite = cls(process, host, chosen, workdir, location)
            if azurite._wait_ready():
                if location is not None:
                    (location / SERVING_FILE).write_text(json.dumps({"host": host,
                                                                     "port": chosen}))
                return azurite
            azurite.stop()
            if attempt == attempts - 1:
                raise AzuriteError(f"Azurite did not start on {host}:{chosen} (exit status "
                                   f"{process.returncode})")
        raise AssertionError("unreachable")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            if _answers(self.host, self.port) and self._takes_sigint():
                return True
            time.sleep(0.05)
        return False

    @property
    def endpoint(self) -> str:
        return _endpoint(self.host, self.port)

    @property
    def connection_string(self) -> str:
        """A connection string for this instance (the development account, its port)."""
        return connection_string(self.host, self.port)

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def _takes_sigint(self) -> bool:
        """Whether Azurite listens for SIGINT yet (it starts to just after it answers HTTP;
        until then SIGINT would kill it); True where that cannot be told."""
        state = _sigint_state(self.process.pid)
        return state is None or state[1]

    def _stopping(self) -> bool:
        """Whether Azurite already has its SIGINT: Ctrl-C in the terminal reaches it too
        (it shares the terminal's process group). It listens for one only (node restores
        the default action, death, once it took it), so a second could kill it mid-save."""
        state = _sigint_state(self.process.pid)
        return state is not None and (state[0] or not state[1])

    def stop(self) -> None:
        """SIGINT, unless it has one already, on which Azurite saves its data (SIGTERM
        would lose the last seconds'), then SIGTERM and SIGKILL if it hangs past
        ``STOP_GRACE``; in-memory data is gone."""
        if self.process.poll() is None:
            if not self._stopping():
                self.process.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=STOP_GRACE)
        end(self.process)
        if self._location is not None and _serving_at(self._location) == (self.host, self.port):
            with contextlib.suppress(OSError):  # another's (one started since) is kept
                (self._location / SERVING_FILE).unlink()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        with contextlib.suppress(OSError):
            self.stop()
