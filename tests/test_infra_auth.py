"""App Service Authentication in infra/: who may sign in, with which tokens.

The identity provider configuration is computed from the deployment's
parameters; ``infra_support.evaluate`` computes it here as Azure would, for
the values docs/deploy.md has people set.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from infra_support import INFRA, bicep_trees, evaluate, typed_trees

APP = "infra/app/function-app.bicep"
WEB_CLIENT = "1234-web.apps.googleusercontent.com"
IOS_CLIENT = "1234-ios.apps.googleusercontent.com"
ANDROID_CLIENT = "1234-android.apps.googleusercontent.com"
API_APP = "11111111-2222-3333-4444-555555555555"
MOBILE_APP = "66666666-7777-8888-9999-000000000000"


def _auth_resource() -> dict[str, Any]:
    [auth] = [r["config"] for r in typed_trees()[APP]["resources"].values()
              if r["config"].get("name") == "authsettingsV2"]
    return auth


def _provider(provider: str, client_id: str, mobile_ids: str) -> dict[str, Any]:
    """The authsettingsV2 identityProviders Azure receives for these parameters."""
    params = {"authProvider": provider, "authClientId": client_id,
              "authMobileClientIds": mobile_ids, "authTenantId": "tenant-guid"}
    return evaluate(_auth_resource()["properties"]["identityProviders"], typed_trees()[APP],
                    params)


def test_google_accepts_the_tokens_of_every_client_of_the_mobile_app():
    """iOS tokens carry the iOS client ID, Android's the web client ID: both pass."""
    google = _provider("google", WEB_CLIENT, f"{IOS_CLIENT}, {ANDROID_CLIENT}")["google"]
    assert google["registration"] == {"clientId": WEB_CLIENT}
    assert google["validation"]["allowedAudiences"] == [WEB_CLIENT, IOS_CLIENT, ANDROID_CLIENT]


def test_google_without_other_clients_accepts_the_web_client_only():
    google = _provider("google", WEB_CLIENT, "")["google"]
    assert google["validation"]["allowedAudiences"] == [WEB_CLIENT]


@pytest.mark.parametrize("mobile_ids, allowed", [
    ("", [API_APP]),
    (MOBILE_APP, [API_APP, MOBILE_APP]),
])
def test_entra_lets_only_the_apps_own_registrations_call(mobile_ids, allowed):
    """Without allowedApplications any application in the tenant could call the API."""
    entra = _provider("azureActiveDirectory", API_APP, mobile_ids)["azureActiveDirectory"]
    validation = entra["validation"]
    assert validation["defaultAuthorizationPolicy"] == {"allowedApplications": allowed}
    assert validation["allowedAudiences"] == [f"api://{API_APP}", API_APP]
    assert entra["registration"] == {
        "clientId": API_APP,
        "openIdIssuer": "${environment().authentication.loginEndpoint}tenant-guid/v2.0"}


def test_only_providers_with_client_directed_sign_in_are_offered():
    """Apple is not in App Service's client-directed sign-in table, and needs a
    client secret JWT renewed every six months: the mobile app could not use it."""
    allowed_values = {}
    for path, tree in bicep_trees().items():
        parameter = tree.get("parameters", {}).get("authProvider")
        if parameter:
            [allowed] = [d["argument"] for d in parameter["decorators"] if d["type"] == "allowed"]
            allowed_values[path] = set(allowed)
    assert allowed_values == {"infra/main.bicep": {"google", "azureActiveDirectory"}, APP: {
        "google", "azureActiveDirectory"}}
    providers = typed_trees()[APP]["variables"]["identityProviders"]["value"]
    assert set(providers) == {"google", "azureActiveDirectory"}
    assert "apple" not in json.dumps(providers).lower()
    main = bicep_trees()["infra/main.bicep"]["parameters"]["authProvider"]
    assert main["default"] is None


def test_the_mobile_client_ids_reach_the_app_from_the_azd_environment():
    parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert parameters["authMobileClientIds"]["value"] == "${AUTH_MOBILE_CLIENT_IDS=}"
    module = typed_trees()["infra/main.bicep"]["modules"]["functionApp"]["config"]["params"]
    assert module["authMobileClientIds"] == {"identifier": "authMobileClientIds"}


def test_every_request_needs_a_user_but_twilios_webhooks():
    validation = _auth_resource()["properties"]["globalValidation"]
    assert validation["requireAuthentication"] is True
    assert validation["unauthenticatedClientAction"] == "Return401"
    assert _auth_resource()["properties"]["login"] == {"tokenStore": {"enabled": False}}
