"""Azurite's Table and Queue services, Microsoft's Azure Storage emulator, as child processes.

Each service is its own program of the npm package (``azurite-table``,
``azurite-queue``): the Table service keeps the app's state, the Queue service
carries the messages of queue-triggered functions (``devhost.queues``). One
connection string names both (``TableEndpoint``, ``QueueEndpoint``), as the
Functions host's ``AzureWebJobsStorage`` does on Azure.

``make run`` keeps its data under ``.azurite/`` (gitignored) so a restart keeps
the history; the tests run it in memory on a free port. It is installed by
``devhost/azurite/install.sh`` (``make run`` and ``make test`` call it) into
``.cache/azurite``.

    with Azurite.start() as azurite:              # in memory, free ports
        os.environ["STATE_STORAGE"] = azurite.connection_string

While one serves a data folder it leaves its ports there (``SERVING_FILE``), so
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
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from devhost import children
from devhost.ready import end

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".cache" / "azurite" / "node_modules" / ".bin"
EXECUTABLE = BIN / "azurite-table"
QUEUE_EXECUTABLE = BIN / "azurite-queue"
INSTALL = "sh devhost/azurite/install.sh"
#: Azurite's development account and its well-known key (published by Microsoft).
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/"
               "K1SZFPTOtr/KBHBeksoGMGw==")
#: Where ``UseDevelopmentStorage=true`` expects the table and queue services.
DEFAULT_PORT = 10002
DEFAULT_QUEUE_PORT = 10001
START_TIMEOUT = 20.0
#: Seconds Azurite gets to save its data and exit once it has its SIGINT.
STOP_GRACE = 10.0
#: In a data folder while an Azurite started here serves it: where it answers.
SERVING_FILE = "serving.json"


class AzuriteError(RuntimeError):
    """Azurite is not installed, or did not start."""


def is_installed() -> bool:
    return EXECUTABLE.is_file() and QUEUE_EXECUTABLE.is_file()


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as probe:
        return probe.connect_ex((host, port)) == 0


def connection_string(host: str, port: int, queue_port: int | None = None) -> str:
    """A connection string for the Azurite on ``host``: its table service on ``port``, its
    queue service on ``queue_port`` if it runs one (the development account)."""
    queue = f"QueueEndpoint={_endpoint(host, queue_port)};" if queue_port else ""
    return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"TableEndpoint={_endpoint(host, port)};{queue}")


def serving(location: Path) -> str | None:
    """The connection string of the Azurite that serves ``location``, if one answers."""
    found = _serving_at(location)
    if found is None or not _answers(*found[:2]):
        return None
    host, port, queue_port = found
    if queue_port is not None and not _answers(host, queue_port, _QUEUE_PROBE):
        queue_port = None
    return connection_string(host, port, queue_port)


def _serving_at(location: Path) -> tuple[str, int, int | None] | None:
    """Where ``SERVING_FILE`` in ``location`` says an Azurite answers (host, table port,
    queue port if any), if it says."""
    try:
        found = json.loads((location / SERVING_FILE).read_text())
        queue_port = found.get("queue_port")
        return (str(found["host"]), int(found["port"]),
                None if queue_port is None else int(queue_port))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _endpoint(host: str, port: int) -> str:
    return f"http://{host}:{port}/{ACCOUNT}"


_TABLE_PROBE = "/Tables"
_QUEUE_PROBE = "?comp=list"


def _answers(host: str, port: int, probe: str = _TABLE_PROBE) -> bool:
    """Whether an Azurite service answers there (403 without credentials, by name): the
    table service for ``_TABLE_PROBE``, the queue service for ``_QUEUE_PROBE``."""
    url = f"{_endpoint(host, port)}{probe}"
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


@dataclass(frozen=True)
class _Service:
    """One of Azurite's programs: how it is told where to listen, and how it is probed."""

    name: str
    executable: Path
    host_flag: str
    port_flag: str
    probe: str


_TABLE = _Service("table", EXECUTABLE, "--tableHost", "--tablePort", _TABLE_PROBE)
_QUEUE = _Service("queue", QUEUE_EXECUTABLE, "--queueHost", "--queuePort", _QUEUE_PROBE)


class Azurite:
    """A running ``azurite-table`` and ``azurite-queue``; ``stop()`` (or leaving ``with``)
    ends both. ``process``/``port``: the table service's; ``queue_process``/``queue_port``:
    the queue service's (in the same data folder: each keeps its own files there)."""

    def __init__(self, process: subprocess.Popen[bytes] | None, host: str, port: int,
                 workdir: Path | None, location: Path | None = None,
                 queue_process: subprocess.Popen[bytes] | None = None,
                 queue_port: int | None = None) -> None:
        self.process = process
        self.host = host
        self.port = port
        self.queue_process = queue_process
        self.queue_port = queue_port
        self._workdir = workdir  # the empty folder an in-memory instance runs in
        self._location = location  # the data folder it serves, if any

    @classmethod
    def start(cls, *, location: Path | None = None, port: int = 0,
              host: str = "127.0.0.1", log: Path | None = None,
              queue_port: int = 0) -> Azurite:
        """Start both services (in memory unless ``location``), return once they answer HTTP.

        ``port`` (table) and ``queue_port`` 0 pick free ones (Azurite itself would not say
        which).
        """
        if not is_installed():
            raise AzuriteError(f"Azurite is not installed in {BIN}: run `{INSTALL}` "
                               "(needs node and npm)")
        workdir = None
        if location is None:  # --inMemoryPersistence refuses --location; run in an empty dir
            workdir = Path(tempfile.mkdtemp(prefix="azurite-"))
        else:
            location.mkdir(parents=True, exist_ok=True)
        azurite = cls(None, host, 0, workdir, location)
        try:
            azurite.process, azurite.port = azurite._start(_TABLE, port, log)
            azurite.queue_process, azurite.queue_port = azurite._start(_QUEUE, queue_port, log)
        except BaseException:
            azurite.stop()
            raise
        if location is not None:
            (location / SERVING_FILE).write_text(json.dumps(
                {"host": host, "port": azurite.port, "queue_port": azurite.queue_port}))
        return azurite

    def _start(self, service: _Service, port: int,
               log: Path | None) -> tuple[subprocess.Popen[bytes], int]:
        """Start one service; its process and port once it answers (three free ports tried
        when ``port`` is 0)."""
        storage = (["--inMemoryPersistence"] if self._location is None
                   else ["--location", str(self._location)])
        attempts = 3 if port == 0 else 1
        for attempt in range(attempts):
            chosen = port or _free_port(self.host)
            command = [str(service.executable), service.host_flag, self.host, service.port_flag,
                       str(chosen), *storage, "--skipApiVersionCheck", "--disableTelemetry",
                       "--silent"]
            output = log.open("ab") if log else subprocess.DEVNULL
            try:
                # node itself (the launcher is #!/usr/bin/env node): it ends with its starter.
                process = children.start(
                    command, cwd=self._workdir or self._location, stdin=subprocess.DEVNULL,
                    stdout=output, stderr=subprocess.STDOUT)
            finally:
                if log:
                    output.close()  # type: ignore[union-attr]
            if _wait_ready(process, self.host, chosen, service.probe):
                return process, chosen
            _stop_process(process)
            if attempt == attempts - 1:
                raise AzuriteError(f"Azurite's {service.name} service did not start on "
                                   f"{self.host}:{chosen} (exit status {process.returncode})")
        raise AssertionError("unreachable")

    @property
    def endpoint(self) -> str:
        return _endpoint(self.host, self.port)

    @property
    def queue_endpoint(self) -> str | None:
        return _endpoint(self.host, self.queue_port) if self.queue_port else None

    @property
    def connection_string(self) -> str:
        """A connection string for this instance (the development account, its ports)."""
        return connection_string(self.host, self.port, self.queue_port)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """Stop both services (``_stop_process``); in-memory data is gone."""
        for process in (self.queue_process, self.process):
            if process is not None:
                _stop_process(process)
        found = _serving_at(self._location) if self._location is not None else None
        if found is not None and found[:2] == (self.host, self.port):
            with contextlib.suppress(OSError):  # another's (one started since) is kept
                (self._location / SERVING_FILE).unlink()  # type: ignore[operator]
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        with contextlib.suppress(OSError):
            self.stop()


def _wait_ready(process: subprocess.Popen[bytes], host: str, port: int, probe: str) -> bool:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        if _answers(host, port, probe) and _takes_sigint(process):
            return True
        time.sleep(0.05)
    return False


def _takes_sigint(process: subprocess.Popen[bytes]) -> bool:
    """Whether Azurite listens for SIGINT yet (it starts to just after it answers HTTP;
    until then SIGINT would kill it); True where that cannot be told."""
    state = _sigint_state(process.pid)
    return state is None or state[1]


def _stopping(process: subprocess.Popen[bytes]) -> bool:
    """Whether Azurite already has its SIGINT: Ctrl-C in the terminal reaches it too
    (it shares the terminal's process group). It listens for one only (node restores
    the default action, death, once it took it), so a second could kill it mid-save."""
    state = _sigint_state(process.pid)
    return state is not None and (state[0] or not state[1])


def _stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGINT, unless it has one already, on which Azurite saves its data (SIGTERM
    would lose the last seconds'), then SIGTERM and SIGKILL if it hangs past
    ``STOP_GRACE``."""
    if process.poll() is None:
        if not _stopping(process):
            process.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=STOP_GRACE)
    end(process)
