"""Every declared app setting is provisioned by the Bicep or listed as left to the user.

Reads ``shared.settings.DECLARATIONS`` as it stands, so a setting added to the
app later fails here until infra/ provisions it or docs/deploy.md's table says
who sets it. Secrets may be set only as Key Vault references.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from infra_support import ROOT, app_settings

from shared import settings
from shared.settings import DECLARATIONS

DEPLOY_DOC = ROOT / "docs" / "deploy.md"
KEY_VAULT_REFERENCE = re.compile(
    r"@Microsoft\.KeyVault\((VaultName=[^;()]+;SecretName=[^;()]+|SecretUri=https://[^()]+)\)")
# Read by the Functions host itself, not by the app: identity-based host storage
# and Application Insights with Microsoft Entra authentication.
HOST_SETTINGS = re.compile(
    r"AzureWebJobsStorage__\w+|APPLICATIONINSIGHTS_(CONNECTION|AUTHENTICATION)_STRING")
# A connection string would bring back shared keys (what Flex Consumption
# refuses is tests/test_infra_flex.py's).
NEVER_SET = {"AzureWebJobsStorage", "STATE_STORAGE"}
# How shared/settings.py marks a value that must stay secret: its parser.
SECRET_PARSERS = {getattr(settings, name) for name in ("_secret", "_connection_string")
                  if hasattr(settings, name)}


def provisioned() -> dict[str, Any]:
    return app_settings()


def documented() -> dict[str, str]:
    """docs/deploy.md's table (its section "App settings"): setting -> how it is set."""
    section = DEPLOY_DOC.read_text().split("\n## App settings\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([A-Za-z_]+)` \| (.+?) \|$", section, re.M)
    names = [name for name, _ in rows]
    assert len(names) == len(set(names)), "a setting appears twice in docs/deploy.md"
    return dict(rows)


def _left_to_user(how: str) -> bool:
    return how.startswith("left to")


def test_secrets_are_recognised():
    secrets = {d.name for d in DECLARATIONS if d.parse in SECRET_PARSERS}
    assert {"TWILIO_AUTH_TOKEN", "TWILIO_API_KEY_SECRET"} <= secrets


@pytest.mark.parametrize("declaration", DECLARATIONS, ids=lambda d: d.name)
def test_each_setting_is_provisioned_or_left_to_the_user(declaration):
    how = documented().get(declaration.name)
    assert how, f"docs/deploy.md's settings table has no row for {declaration.name}"
    if _left_to_user(how):
        assert declaration.name not in provisioned(), (
            f"{declaration.name} is provisioned by infra/ but docs/deploy.md says '{how}'")
        assert not declaration.required, f"{declaration.name} is required: provision it"
    else:
        assert declaration.name in provisioned(), (
            f"{declaration.name}: provision it in infra/app/function-app.bicep or say in "
            f"docs/deploy.md's table who sets it ('left to ...'); the table says '{how}'")


@pytest.mark.parametrize("declaration", [d for d in DECLARATIONS if d.parse in SECRET_PARSERS],
                         ids=lambda d: d.name)
def test_secrets_are_set_only_as_key_vault_references(declaration):
    value = provisioned().get(declaration.name)
    if value is None:
        return  # not set at all: nothing leaks
    assert isinstance(value, str) and KEY_VAULT_REFERENCE.fullmatch(value), (
        f"{declaration.name} must be a Key Vault reference, not {value!r}")
    assert "Key Vault" in documented()[declaration.name]


def test_infra_sets_only_declared_or_host_settings():
    declared = {d.name for d in DECLARATIONS}
    unknown = {name for name in provisioned()
               if name not in declared and not HOST_SETTINGS.fullmatch(name)}
    assert not unknown, f"infra/ sets settings nobody declares (typo?): {unknown}"
    assert not NEVER_SET & set(provisioned())


def test_key_vault_references_point_at_the_vault_through_the_apps_identity():
    references = {name for name, value in provisioned().items()
                  if isinstance(value, str) and value.startswith("@Microsoft.KeyVault")}
    secrets = {d.name for d in DECLARATIONS if d.parse in SECRET_PARSERS}
    assert references and references <= secrets
    reference = provisioned()["TWILIO_AUTH_TOKEN"]
    assert reference.startswith("@Microsoft.KeyVault(VaultName=${keyVaultName};")


def test_the_docs_table_lists_only_declared_settings():
    declared = {d.name for d in DECLARATIONS}
    assert set(documented()) == declared, (
        f"undeclared: {set(documented()) - declared}; missing: {declared - set(documented())}")


def test_webhook_signatures_are_always_checked_in_azure():
    assert provisioned()["TWILIO_VALIDATE_SIGNATURE"] == "true"


def test_storage_connections_are_identity_based_with_the_apps_identity():
    settings = provisioned()
    connections = {name.split("__")[0] for name in settings if name.endswith("__tableServiceUri")}
    assert {"AzureWebJobsStorage", "STATE_STORAGE"} <= connections
    for prefix in connections:
        assert prefix not in settings, f"{prefix}: a connection string needs shared keys"
        assert settings[f"{prefix}__credential"] == "managedidentity"
        assert settings[f"{prefix}__clientId"] == "identityClientId"
