"""Child processes that end when their parent ends, however it ends.

Azurite, a Functions host, a sandbox or a load run started by a test, the
benchmark, the load test or ``make run`` must not outlive what started it: a
parent stopped from outside (a CI time limit, Ctrl-C, ``timeout``, SIGKILL)
gets no chance to stop its children, and an orphaned Azurite keeps listening.
Every dev process is started here:

- on Linux the kernel sends the child SIGTERM the moment its parent dies
  (``PR_SET_PDEATHSIG``, set between fork and exec, so it holds for the
  program exec'd: node itself for Azurite, whose launcher is
  ``#!/usr/bin/env node``, which execs node in the same process);
- everywhere, the child stays in its parent's process group, so what stops
  the group (Ctrl-C in a terminal, ``timeout``, most CI runners) stops it too.

The kernel's "parent" is the thread that started the child, not the process:
``start`` forks from one thread that lives as long as the process, so a
child never dies with a worker thread that happened to start it;
``start_async`` from the event loop's thread, which owns the child's pipes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

#: prctl(2)'s option: the signal a process gets when its parent thread ends.
PR_SET_PDEATHSIG = 1
DEATH_SIGNAL = signal.SIGTERM


def _libc_prctl() -> Callable[..., int] | None:
    """prctl(2) on Linux, looked up once in the parent (a child between fork and exec only
    calls it); None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    return ctypes.CDLL(None, use_errno=True).prctl


_prctl = _libc_prctl()


def _options(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with the death signal asked for between fork and exec (on Linux)."""
    if {"preexec_fn", "start_new_session", "process_group"} & options.keys():
        raise ValueError("children are started in their parent's process group, with the "
                         "death signal: no preexec_fn, session or process group of their own")
    if _prctl is None:
        return options
    prctl, parent = _prctl, os.getpid()

    def die_with_parent() -> None:
        prctl(PR_SET_PDEATHSIG, DEATH_SIGNAL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the signal was asked for
            os._exit(1)

    return {**options, "preexec_fn": die_with_parent}


def start(command: Sequence[str], **options: Any) -> subprocess.Popen[Any]:
    """``subprocess.Popen(command, **options)``, ending when this process ends."""
    def popen() -> subprocess.Popen[Any]:
        return subprocess.Popen(list(command), **_options(options))  # noqa: S603 - the callers' commands
    return _spawner().submit(popen)


def run(command: Sequence[str], **options: Any) -> subprocess.CompletedProcess[Any]:
    """``subprocess.run(command, **options)``, the child ending if this process ends first.

    The calling thread waits for the child, so it is the child's parent thread.
    """
    return subprocess.run(list(command), **_options(options))  # noqa: S603 - the callers' commands


async def start_async(*command: str, **options: Any) -> asyncio.subprocess.Process:
    """``asyncio.create_subprocess_exec``, ending when this process (or the loop's thread) ends."""
    return await asyncio.create_subprocess_exec(*command, **_options(options))


class _Spawner:
    """One daemon thread that forks every ``start``ed child, and lives until the process ends."""

    def __init__(self) -> None:
        self._work: queue.SimpleQueue[tuple[Callable[[], Any], concurrent.futures.Future[Any]]]
        self._work = queue.SimpleQueue()
        threading.Thread(target=self._serve, name="child process spawner", daemon=True).start()

    def submit[T](self, make: Callable[[], T]) -> T:
        done: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._work.put((make, done))
        return done.result()

    def _serve(self) -> None:
        while True:
            make, done = self._work.get()
            try:
                done.set_result(make())
            except BaseException as error:  # handed to the caller, raised there
                done.set_exception(error)


_spawner_made = threading.Lock()
_the_spawner: _Spawner | None = None


def _spawner() -> _Spawner:
    global _the_spawner  # one per process, made on first use
    with _spawner_made:
        if _the_spawner is None:
            _the_spawner = _Spawner()
        return _the_spawner
