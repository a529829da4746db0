"""Settings: one declaration; errors that name the setting and never its value."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from pathlib import Path

import pytest
import settings_doc
from harness import APP_URL, AUTH_TOKEN, created, function_main, invoke, problem, request

from shared.settings import (
    DECLARATIONS,
    DEFAULT_GREETING,
    SettingError,
    Settings,
    app_settings,
    load_settings,
)
from shared.twilio_client import close_clients

ROOT = Path(__file__).parents[1]
VALID = {"TWILIO_ACCOUNT_SID": "AC" + "a1" * 16, "TWILIO_AUTH_TOKEN": AUTH_TOKEN}


@pytest.mark.parametrize("function", ["make_call", "send_sms", "twiml"])
@pytest.mark.parametrize("name", [d.name for d in DECLARATIONS if d.required])
def test_each_missing_required_setting_gets_its_own_500(app_env, monkeypatch, function, name):
    secret_values = {n: v for n, v in VALID.items() if n != name}
    monkeypatch.delenv(name)
    body = {"to": "+14155552671", "body": "x"} if function == "send_sms" else {"to": "+14155552671"}
    response = invoke(function, request("POST", f"{APP_URL}/{function}", json_body=body))

    assert response.status_code == 500
    document = problem(response)
    assert document["setting"] == name and name in document["detail"]
    assert not any(value in response.get_body().decode() for value in secret_values.values())


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TWILIO_ACCOUNT_SID", "not-a-sid-s3cr3t"),
        ("TWILIO_API_KEY_SID", "SK123"),
        ("TWILIO_MESSAGING_SERVICE_SID", "MGxyz"),
        ("TWILIO_FROM_NUMBER", "415-555-s3cr3t"),
        ("ALLOWED_FROM_NUMBERS", "+14155550100,+1415s3cr3t"),
        ("PUBLIC_BASE_URL", "contoso.azurewebsites.net/s3cr3t"),
        ("PUBLIC_BASE_URL", "https://user:s3cr3t@contoso.com"),
        ("PUBLIC_BASE_URL", "https://my_s3cr3t.contoso.com"),
        ("ALLOWED_COUNTRIES", "US,UK,s3cr3t"),
        ("ALLOW_PREMIUM_NUMBERS", "s3cr3t"),
        ("TWILIO_VALIDATE_SIGNATURE", "maybe-s3cr3t"),
        ("TWILIO_TIMEOUT_SECONDS", "9999"),
        ("TWILIO_TIMEOUT_SECONDS", "s3cr3t"),
        ("TWILIO_API_BASE_URL", "ftp://s3cr3t"),
        ("TWILIO_API_BASE_URL", "http://twilio.s3cr3t.example"),
        ("TWILIO_TIMEOUT_SECONDS", "250"),
        ("MEDIA_MAX_BYTES", "1023"),
        ("MEDIA_MAX_BYTES", "104857601"),
        ("MEDIA_MAX_BYTES", "5MB-s3cr3t"),
        ("WEBSITE_HOSTNAME", "https://s3cr3t/"),
        ("STATE_STORAGE", "s3cr3t"),
        ("STATE_STORAGE", "DefaultEndpointsProtocol=https;AccountKey=s3cr3t"),
        ("STATE_STORAGE__tableServiceUri", "ftp://s3cr3t.table.core.windows.net"),
        ("STATE_STORAGE__tableServiceUri", "https://s3cr3t.table.core.windows.net/deliveries"),
        ("AzureWebJobsStorage__clientId", "s3cr3t"),
        ("AzureWebJobsStorage__credential", "s3cr3t"),
        ("REQUIRE_SIGNED_IN_USER", "s3cr3t"),
        ("TWILIO_TWIML_APP_SID", "s3cr3t"),
        ("TWILIO_PUSH_CREDENTIAL_SID", "AP" + "c3" * 16),
        ("VOICE_TOKEN_TTL_SECONDS", "86401"),
        ("VOICE_SINGLE_USER_IDENTITY", "s3cr3t bob"),
        ("VOICE_INCOMING_IDENTITY", "client:s3cr3t"),
        ("RATE_LIMIT_VOICE_TOKENS_PER_CALLER", "-3"),
        ("WEBSITE_AUTH_ENABLED", "s3cr3t"),
        ("RATE_LIMIT_PER_ACCOUNT", "s3cr3t"),
        ("RATE_LIMIT_SMS_PER_CALLER", "-1"),
        ("RATE_LIMIT_STORE_FAILURE", "s3cr3t"),
    ],
)
def test_malformed_settings_are_named_without_their_value(name, value):
    with pytest.raises(SettingError) as raised:
        load_settings({**VALID, name: value})
    assert raised.value.name == name
    assert "s3cr3t" not in str(raised.value) and value not in str(raised.value)


@pytest.mark.parametrize("given", ["TWILIO_API_KEY_SID", "TWILIO_API_KEY_SECRET"])
def test_api_key_needs_both_halves(given):
    value = "SK" + "b2" * 16 if given == "TWILIO_API_KEY_SID" else "secret"
    with pytest.raises(SettingError) as raised:
        load_settings({**VALID, given: value})
    assert raised.value.name != given and raised.value.name.startswith("TWILIO_API_KEY_")


def test_defaults_apply():
    settings = load_settings(VALID)
    assert settings == Settings(
        account_sid=VALID["TWILIO_ACCOUNT_SID"], auth_token=AUTH_TOKEN, api_key_sid=None,
        api_key_secret=None, from_number=None, messaging_service_sid=None,
        allowed_from_numbers=None, public_base_url=None, azure_hostname=None,
        allowed_countries=None, allow_premium_numbers=False,
        validate_signature=True, api_base_url="https://api.twilio.com", timeout_seconds=10.0,
        media_max_bytes=5 * 1024 * 1024, sms_reply_message=None, message_retention_days=30,
        sms_reply_attribution="last-sender", sms_reply_window_hours=72,
        sms_unassigned_owner=None, state_storage=None,
        state_storage_table_uri=None,
        state_storage_credential=None, state_storage_client_id=None, webjobs_storage=None,
        webjobs_storage_table_uri=None, webjobs_storage_credential=None,
        webjobs_storage_client_id=None, webjobs_storage_queue_uri=None,
        website_auth_enabled=None,
        require_signed_in_user=False, rate_limit_sms_per_caller=30,
        rate_limit_calls_per_caller=10, rate_limit_per_destination=10,
        rate_limit_per_country=200, rate_limit_per_account=1000,
        rate_limit_store_failure="refuse",
        twiml_app_sid=None, push_credential_sid=None, voice_token_ttl=3600,
        voice_single_user_identity=None, voice_incoming_identity=None,
        voice_allow_client_to_client=False, voice_route_to_contact=True,
        voice_ring_seconds=25, voicemail_enabled=True, voicemail_greeting=DEFAULT_GREETING,
        voicemail_greeting_url=None, voicemail_voice="woman", voicemail_language=None,
        voicemail_max_seconds=120, voicemail_transcribe=False,
        rate_limit_voice_tokens_per_caller=60,
        rate_limit_media_per_caller=300, rate_limit_devices_per_caller=20,
        notification_hubs_connection=None,
        notification_hubs_hub=None, push_preview="none",
        functions_environment=None,
    )
    assert settings.state_connection is None and not settings.easy_auth
    assert not settings.development  # Production, as on Azure


def test_declarations_cover_every_settings_field():
    assert [d.field for d in DECLARATIONS] == list(Settings.__dataclass_fields__)
    assert len({d.name for d in DECLARATIONS}) == len(DECLARATIONS)


def test_settings_doc_table_matches_the_declarations():
    rows = [line for line in (ROOT / "docs" / "settings.md").read_text().splitlines()
            if re.match(r"\| `[A-Z][A-Za-z_]+` \| (required|optional|default)", line)]
    expected = [settings_doc.row(d) for d in DECLARATIONS]
    assert rows == expected, "docs/settings.md's table should be:\n" + "\n".join(expected)


def test_settings_doc_is_what_its_generator_writes():
    assert (ROOT / "docs" / "settings.md").read_text() == settings_doc.render(), (
        "docs/settings.md is out of date: run .venv/bin/python tests/settings_doc.py")


def test_settings_doc_row_says_what_a_setting_needs():
    required = next(d for d in DECLARATIONS if d.required)
    defaulted = next(d for d in DECLARATIONS if d.default)
    optional = next(d for d in DECLARATIONS if not d.required and not d.default)
    assert settings_doc.row(required) == f"| `{required.name}` | required | {required.meaning} |"
    assert f"| default `{defaulted.default}` |" in settings_doc.row(defaulted)
    assert "| optional |" in settings_doc.row(optional)


def test_readme_keeps_no_settings_table():
    """The reference moved to docs/settings.md: one table, not two to keep in step."""
    readme = (ROOT / "README.md").read_text()
    assert not re.search(r"^\| `[A-Z][A-Za-z_]+` \| (required|optional|default)", readme, re.M)


def test_example_settings_file_matches_the_declarations():
    example = json.loads((ROOT / "local.settings.json.example").read_text())
    values = example["Values"]
    assert values.pop("FUNCTIONS_WORKER_RUNTIME") == "python"
    assert values == {d.name: d.example or d.default or "" for d in DECLARATIONS}
    load_settings({**VALID, **{name: value for name, value in values.items() if value}})


def test_plain_http_api_origin_only_on_loopback():
    settings = load_settings({**VALID, "TWILIO_API_BASE_URL": "http://127.0.0.1:8081/"})
    assert settings.api_base_url == "http://127.0.0.1:8081"


def test_public_origin_prefers_public_base_url_then_azure_host_name():
    both = {**VALID, "PUBLIC_BASE_URL": "https://calls.contoso.com/voice/",
            "WEBSITE_HOSTNAME": "contoso.azurewebsites.net"}
    assert load_settings(both).public_origin == "https://calls.contoso.com/voice"
    azure = {**VALID, "WEBSITE_HOSTNAME": "Contoso.AzureWebsites.net"}
    assert load_settings(azure).public_origin == "https://contoso.azurewebsites.net"
    assert load_settings(VALID).public_origin is None


def _country_warnings(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records
            if r.levelno == logging.WARNING and "ALLOWED_COUNTRIES" in r.getMessage()]


def test_unset_allowed_countries_warns_once_per_process(app_env, caplog):
    caplog.set_level(logging.WARNING, logger="twilio_functions")
    app_settings.cache_clear()  # a fresh process
    first = app_settings()
    assert app_settings() is first  # parsed once
    assert len(_country_warnings(caplog)) == 1
    for _ in range(3):
        created(invoke_cached("send_sms", {"to": "+14155552671", "body": "x"}))
    assert len(_country_warnings(caplog)) == 1


def test_set_allowed_countries_does_not_warn(app_env, monkeypatch, caplog):
    caplog.set_level(logging.WARNING, logger="twilio_functions")
    monkeypatch.setenv("ALLOWED_COUNTRIES", "US,CA")
    app_settings.cache_clear()
    app_settings()
    assert _country_warnings(caplog) == []


@pytest.mark.parametrize(("auth", "owner", "warned"), [
    (None, "aad:0c3b4f2e", True), ("True", "aad:0c3b4f2e", False), (None, "anonymous", False),
])
def test_an_unassigned_owner_nobody_can_sign_in_as_is_warned_of_once(
        app_env, monkeypatch, caplog, auth, owner, warned):
    caplog.set_level(logging.WARNING, logger="twilio_functions")
    monkeypatch.setenv("SMS_UNASSIGNED_OWNER", owner)
    if auth:
        monkeypatch.setenv("WEBSITE_AUTH_ENABLED", auth)
    else:
        monkeypatch.delenv("WEBSITE_AUTH_ENABLED", raising=False)
    app_settings.cache_clear()  # a fresh process
    app_settings()
    app_settings()
    warnings = [r for r in caplog.records if "SMS_UNASSIGNED_OWNER" in r.getMessage()]
    assert [r.levelno for r in warnings] == ([logging.WARNING] if warned else [])


def invoke_cached(function: str, body: dict[str, str]):
    """Invoke as the worker does, keeping this process's settings (unlike ``harness.invoke``)."""
    async def run():
        try:
            return await function_main(function)(
                request("POST", f"{APP_URL}/{function}", json_body=body))
        finally:
            await close_clients()
    return asyncio.run(run())


def test_state_storage_wins_over_the_apps_own_storage():
    both = {**VALID, "STATE_STORAGE": "UseDevelopmentStorage=true",
            "AzureWebJobsStorage": "AccountName=app;AccountKey=a2V5"}
    assert load_settings(both).state_connection.setting == "STATE_STORAGE"
    app_only = {**VALID, "AzureWebJobsStorage": "AccountName=app;AccountKey=a2V5"}
    connection = load_settings(app_only).state_connection
    assert (connection.setting, connection.connection_string) == (
        "AzureWebJobsStorage", "AccountName=app;AccountKey=a2V5")


def test_identity_based_storage_by_azure_functions_conventions():
    client_id = "0f8fad5b-d9cb-469f-a165-70867728950e"
    env = {**VALID, "STATE_STORAGE__tableServiceUri": "https://acct.table.core.windows.net/",
           "STATE_STORAGE__credential": "ManagedIdentity", "STATE_STORAGE__clientId": client_id,
           "AzureWebJobsStorage": "UseDevelopmentStorage=true"}
    connection = load_settings(env).state_connection
    assert connection.setting == "STATE_STORAGE"
    assert connection.connection_string is None
    assert connection.table_service_uri == "https://acct.table.core.windows.net"
    assert (connection.credential, connection.client_id) == ("managedidentity", client_id)


@pytest.mark.parametrize("reference", [
    "@Microsoft.KeyVault(SecretUri=https://kv-s3cr3t.vault.azure.net/secrets/twilio-auth-token/)",
    "@Microsoft.KeyVault(VaultName=kv-s3cr3t;SecretName=twilio-auth-token)",
])
def test_an_unresolved_key_vault_reference_is_named_not_used(reference):
    """Azure passes the reference's text when it cannot read the secret: a 500
    naming the setting, never a Twilio request signed with that text."""
    with pytest.raises(SettingError) as raised:
        load_settings({**VALID, "TWILIO_AUTH_TOKEN": reference})
    assert raised.value.name == "TWILIO_AUTH_TOKEN"
    assert "Key Vault" in raised.value.reason and "s3cr3t" not in str(raised.value)
