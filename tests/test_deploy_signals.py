"""What the deployed app tells its operator when Azure is not set up as infra/ meant.

infra/ turns on App Service Authentication and sets REQUIRE_SIGNED_IN_USER;
Azure then sets WEBSITE_AUTH_ENABLED. Should it not (nothing here can prove
it does on Flex Consumption), every signed-in request would be refused 401
without a word: the app says so once per process, in the log docs/deploy.md's
queries read.
"""

from __future__ import annotations

import logging

import pytest

from shared.settings import app_settings


def _auth_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and "WEBSITE_AUTH_ENABLED" in r.getMessage()]


@pytest.fixture
def fresh_process(app_env, monkeypatch, caplog):
    caplog.set_level(logging.WARNING, logger="twilio_functions")
    monkeypatch.setenv("ALLOWED_COUNTRIES", "US,CA")
    app_settings.cache_clear()  # each test is a process starting
    yield monkeypatch
    app_settings.cache_clear()


def test_a_user_required_without_authentication_is_said_once(fresh_process, caplog):
    fresh_process.setenv("REQUIRE_SIGNED_IN_USER", "true")
    app_settings()
    app_settings()
    [warning] = _auth_warnings(caplog)
    assert "App Service Authentication looks off" in warning
    assert "401 sign-in-required" in warning


@pytest.mark.parametrize("environment", [
    {"REQUIRE_SIGNED_IN_USER": "true", "WEBSITE_AUTH_ENABLED": "True"},  # as deployed
    {},  # make run: no sign-in asked for
])
def test_nothing_is_said_when_authentication_is_as_required(fresh_process, caplog,
                                                            environment):
    for name, value in environment.items():
        fresh_process.setenv(name, value)
    app_settings()
    assert _auth_warnings(caplog) == []
