"""Fixtures shared by the tests: the sandbox and an app configured against it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from harness import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, SandboxThread
from no_skips_in_ci import pytest_runtest_makereport  # noqa: F401 - a hook: skips fail in CI

from shared.settings import DECLARATIONS


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxThread]:
    running = SandboxThread()
    yield running
    running.close()


@pytest.fixture
def app_env(monkeypatch: pytest.MonkeyPatch, sandbox: SandboxThread) -> SandboxThread:
    """The app configured against the sandbox, as a deployment with an auth token."""
    sandbox.reset()
    settings = {
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_FROM_NUMBER": FROM_NUMBER,
        "TWILIO_API_BASE_URL": sandbox.base_url,
        "TWILIO_TIMEOUT_SECONDS": "2",
    }
    for declaration in DECLARATIONS:  # nothing from the developer's shell leaks in
        monkeypatch.delenv(declaration.name, raising=False)
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    return sandbox


