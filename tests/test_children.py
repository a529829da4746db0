"""No dev process outlives what started it, however that ends (``devhost.children``).

A parent started here starts, through the project's own code, what ``make
test`` starts (the session's Azurite, a launcher on it) and what ``make run``
starts (a launcher with its own Azurite, the sandbox, the host), and a
process as the benchmark starts its host; then it is killed with SIGKILL,
which no cleanup survives. Every process below it must end, and every port
they listened on close. Waiting is on their exits (pidfds), bounded.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from live import copy_app

from devhost import azurite, children

ROOT = Path(__file__).parents[1]
STARTED_TIMEOUT = 240.0  # a hang guard: two launchers and two Azurites, on a busy machine
EXIT_TIMEOUT = 60.0  # a hang guard: each child ends within a second of its SIGTERM
#: The parent: prints what it started as one JSON line, then waits to be killed.
PARENT = r"""
import asyncio, json, os, sys
sys.path[:0] = [sys.argv[1], os.path.join(sys.argv[1], "tests")]
from devhost import azurite, children
from devhost.host import READY_PREFIX
from devhost.ready import start_and_wait
from live import LiveApp
from storage import shared_azurite
from twilio_sandbox import READY_PREFIX as SANDBOX_READY_PREFIX

app_dir = sys.argv[2]
credentials = {"TWILIO_ACCOUNT_SID": "AC" + "a1" * 16, "TWILIO_AUTH_TOKEN": "s3cr3t"}
# make test: the session's Azurite, and a launcher on it.
tested = LiveApp(credentials)
# make run: a launcher that starts its own Azurite (data in the app folder), sandbox and host.
env = {k: v for k, v in os.environ.items() if "STORAGE" not in k.upper()}
run = start_and_wait([sys.executable, "-m", "devhost", "--app-dir", app_dir, "--port", "0"],
                     env={**env, **credentials}, cwd=sys.argv[1], stderr=sys.stderr,
                     prefixes=(READY_PREFIX, SANDBOX_READY_PREFIX), wait_for=READY_PREFIX,
                     timeout=60)
# make bench: a child on an event loop (a host would do; one that just waits is enough).
async def bench_child():
    return await children.start_async(sys.executable, "-c", "import time; time.sleep(3600)")
benched = asyncio.new_event_loop().run_until_complete(bench_child())
store = json.load(open(os.path.join(app_dir, ".azurite", azurite.SERVING_FILE)))
print(json.dumps({"urls": [tested.base_url, tested.sandbox_url, *run.urls.values()],
                  "ports": [shared_azurite().port, shared_azurite().queue_port, store["port"],
                            store["queue_port"]], "bench": benched.pid}),
      flush=True)
sys.stdin.read()
"""


#: What starts a process that may outlive the call: only ``devhost.children`` may.
SPAWNS = re.compile(r"\b(subprocess\.(Popen|run|call|check_call|check_output|getoutput|"
                    r"getstatusoutput)|create_subprocess_(exec|shell)|"
                    r"os\.(fork|spawn\w*|posix_spawn\w*|exec\w+|system|popen))\("
                    r"|^\s*(import|from) multiprocessing")
TOOLING = ("devhost", "bench", "loadtest", "tests", "twilio_sandbox", "localhttp")
#: ``subprocess.run`` is allowed for `make -n` (prints commands, runs none) and in these
#: files, for short commands that serve nothing, each under a timeout.
DRY_RUN = re.compile(r'\bsubprocess\.run\(\["make", "--no-print-directory", "-n"')
SHORT_RUNS = {
    "tests/test_twiml.py": "a `python -c` probe that prints the modules imported",
    "tests/test_voice.py": "a `python -c` probe that prints the modules imported",
    "tests/test_docs.py": "each module's `--help`",
    "tests/test_deploy_package.py": "the packager, offline, and an isolated import probe",
    "tests/infra_support.py": "the infra checkers (bicep, linters) on files",
    "tests/test_no_silent_skips.py": "install.sh with stub tools",
    "tests/test_generated_client.py": "the client generator, which writes files",
    "tests/test_devhost_host.py": "a host refusing a settings file; the Python API's probe",
    "tests/test_infra_postprovision.py": "the postprovision hook with stub tools",
}
_RUN = re.compile(r"\bsubprocess\.run\(")


def _allowed(path: str, line: str) -> bool:
    if DRY_RUN.search(line):
        return True
    return path in SHORT_RUNS and _RUN.search(line) is not None and not any(
        m.group(0) != "subprocess.run(" for m in SPAWNS.finditer(line))


def test_every_dev_process_is_started_in_one_place():
    """A process started anywhere else would not get the death signal."""
    found = [f"{relative}: {line.strip()}"
             for folder in TOOLING for path in sorted((ROOT / folder).rglob("*.py"))
             if path != ROOT / "devhost" / "children.py" and path != Path(__file__)
             for relative in [str(path.relative_to(ROOT))]
             for line in path.read_text(encoding="utf-8").splitlines()
             if SPAWNS.search(line) and not _allowed(relative, line)]
    assert found == []


def descendants(root: int) -> set[int]:
    """Every process below ``root``, from /proc (each process's parent)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
    below, found = {root}, set()
    while True:
        more = {pid for pid, parent in parents.items() if parent in below} - found
        if not more:
            return found
        found |= more
        below = more


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def exits(pids: set[int]) -> Iterator[dict[int, int]]:
    """A pidfd per process (readable once it exits); whatever is still running after is
    killed, so a failing test leaves nothing behind either."""
    fds = {}
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            fds[pid] = os.pidfd_open(pid)
    try:
        yield fds
    finally:
        for fd in fds.values():
            if not select.select([fd], [], [], 0)[0]:
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(fd, signal.SIGKILL)
            os.close(fd)


def still_running(fds: dict[int, int], timeout: float) -> list[str]:
    """Wait (bounded) until every process has exited; the command lines of those that did not."""
    poll = select.poll()
    for fd in fds.values():
        poll.register(fd, select.POLLIN)
    pending = set(fds.values())
    deadline = time.monotonic() + timeout
    while pending and (left := deadline - time.monotonic()) > 0:
        for fd, _ in poll.poll(left * 1000):
            pending.discard(fd)
            poll.unregister(fd)
    return [command_line(pid) for pid, fd in fds.items() if fd in pending]


def command_line(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    return str(pid)


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="the parent-death signal is Linux's; elsewhere the process group")
def test_a_parent_killed_with_sigkill_takes_every_process_it_started_down(tmp_path):
    parent = children.start([sys.executable, "-c", PARENT, str(ROOT), str(copy_app(tmp_path))],
                            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert parent.stdout is not None
        ready = select.select([parent.stdout], [], [], STARTED_TIMEOUT)[0]
        assert ready, "the parent did not start its children"
        started = json.loads(parent.stdout.readline() or "null")
        assert started is not None, f"the parent ended: {parent.wait()}"
        with exits(descendants(parent.pid)) as fds:
            ports = [*started["ports"],
                     *(int(re.search(r":(\d+)", url)[1]) for url in started["urls"])]
            assert all(map(listening, ports)), ports
            # Two Azurites (a table and a queue service each), two launchers, the event
            # loop's child: node and python.
            commands = [command_line(pid) for pid in fds]
            assert sum("azurite" in c for c in commands) == 4, commands
            assert started["bench"] in fds

            parent.kill()
            parent.wait()
            assert still_running(fds, EXIT_TIMEOUT) == []
            assert [port for port in ports if listening(port)] == []
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def _took_sigint(pid: int) -> bool:
    """Whether ``pid`` has handled its SIGINT (node stops catching it once its one listener
    ran), from /proc; True once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    caught = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
    return not int(caught.split()[1], 16) & (1 << (signal.SIGINT - 1))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_ctrl_c_reaches_azurite_once(tmp_path):
    """Ctrl-C signals the whole process group: Azurite (started in it) and the launcher,
    which then stops Azurite. Azurite listens for one SIGINT only, so a second one from
    ``stop()`` would kill it while it saves its data."""
    store = azurite.Azurite.start(location=tmp_path / ".azurite")
    try:
        store.process.send_signal(signal.SIGINT)  # what the terminal sends the group
        deadline = time.monotonic() + EXIT_TIMEOUT  # a hang guard
        while not _took_sigint(store.process.pid) and time.monotonic() < deadline:
            time.sleep(0.001)
        store.stop()  # what the launcher does next
        assert store.process.returncode == 0  # exited on its own, not killed by a signal
        assert not (tmp_path / ".azurite" / azurite.SERVING_FILE).exists()
    finally:
        store.stop()
