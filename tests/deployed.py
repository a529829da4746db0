"""The app as deployed, for tests that invoke its functions in-process against the sandbox.

Its own host name (so URLs never come from the request), a store, limits no
test trips, and no status callbacks from the sandbox: they would go to that
host name, and these tests read what the app recorded or post their own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from harness import SandboxThread
from live import ROOMY_LIMITS

HOST = "contoso.azurewebsites.net"
ORIGIN = f"https://{HOST}"


@contextlib.contextmanager
def deployed(app_env: SandboxThread, monkeypatch: pytest.MonkeyPatch, storage: str,
             **settings: str) -> Iterator[SandboxThread]:
    """``app_env`` on ``HOST`` with the store ``storage`` (a connection string) and
    ``settings``; the sandbox's callbacks off until the test ends."""
    for name, value in {"WEBSITE_HOSTNAME": HOST, "STATE_STORAGE": storage, **ROOMY_LIMITS,
                        **settings}.items():
        monkeypatch.setenv(name, value)
    app_env.call_soon(lambda: setattr(app_env.sandbox, "status_callbacks", False))
    try:
        yield app_env
    finally:
        app_env.call_soon(lambda: setattr(app_env.sandbox, "status_callbacks", True))
