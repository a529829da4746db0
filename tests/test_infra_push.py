"""infra/ for push notifications: the Notification Hubs namespace, hub and rule, the
connection string's way into the app through Key Vault, where the APNs and FCM v1
credentials may go, and the queue of push events with the roles its bindings need.

Each Azure rule held here names the Microsoft page it comes from.
"""

from __future__ import annotations

import json
from typing import Any

from infra_support import (
    INFRA,
    ROOT,
    SCRIPTS,
    app_settings,
    bicep_trees,
    evaluate,
    resource_body,
    typed_trees,
)

NH = "infra/app/notification-hubs.bicep"
MAIN = "infra/main.bicep"
STORAGE = "infra/app/storage.bicep"

# Notification Hubs security: SAS rules with Listen, Send, Manage; only hub-level
# rules can send; no Microsoft Entra data-plane roles.
NH_SECURITY = ("https://learn.microsoft.com/azure/notification-hubs/"
               "notification-hubs-push-notification-security")
# Token-based (HTTP/2) authentication for APNs: the two endpoints, key ID, team ID
# (appId), bundle ID (appName), token.
NH_APNS_TOKEN = ("https://learn.microsoft.com/azure/notification-hubs/"
                 "notification-hubs-push-notification-http2-token-authentication")
NH_TEMPLATE_CHANGES = ("https://learn.microsoft.com/azure/templates/microsoft.notificationhubs/"
                       "change-log/namespaces/notificationhubs")
# The roles each Queue storage binding needs with an identity-based connection
# (azure-docs includes/functions-queue-permissions.md).
QUEUE_PERMISSIONS = ("https://learn.microsoft.com/azure/azure-functions/"
                     "functions-bindings-storage-queue-trigger#identity-based-connections")
# Host storage with an identity: Blob Data Owner covers the host; Queue Data
# Contributor only "in some situations, as with use of the blob trigger".
HOST_STORAGE = ("https://learn.microsoft.com/azure/azure-functions/functions-reference"
                "#connecting-to-host-storage-with-an-identity")
# Queue trigger: maxDequeueCount (5), then the message goes to `<queue>-poison`.
POISON = ("https://learn.microsoft.com/azure/azure-functions/"
          "functions-bindings-storage-queue-trigger#poison-messages")
# Identity-based connections: `<prefix>__queueServiceUri`, `__credential`, `__clientId`.
IDENTITY_CONNECTIONS = ("https://learn.microsoft.com/azure/azure-functions/"
                        "functions-reference#configure-an-identity-based-connection")

ROLES = {  # https://learn.microsoft.com/azure/role-based-access-control/built-in-roles/storage
    "19e7f393-937e-4f77-808e-94535e297925": "Storage Queue Data Reader",
    "8a0f0c08-91a1-4084-bc3d-661d67233fed": "Storage Queue Data Message Processor",
    "c6a89b2d-59bc-44d0-9896-0f6e12d7b80a": "Storage Queue Data Message Sender",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
}


def _resources(path: str) -> dict[str, dict[str, Any]]:
    return bicep_trees()[path]["resources"]


def _mentions(node: Any, name: str) -> bool:
    """Does pycep's tree of a value refer to the identifier ``name``?"""
    if isinstance(node, str):
        return node == name or f"${{{name}}}" in node
    if isinstance(node, dict):
        return any(_mentions(value, name) for value in node.values())
    if isinstance(node, list):
        return any(_mentions(item, name) for item in node)
    return False


def _only_emptiness(node: Any, name: str) -> bool:
    """Does ``node`` use ``name`` only as ``empty(name)``?"""
    if isinstance(node, dict) and node.get("function", {}).get("type") == "empty":
        return True
    if isinstance(node, dict):
        return all(_only_emptiness(value, name) for value in node.values())
    if isinstance(node, list):
        return all(_only_emptiness(item, name) for item in node)
    return node != name


def _where_used(path: str, name: str) -> set[str]:
    """The declarations of one Bicep file whose body refers to ``name``."""
    tree = bicep_trees()[path]
    return {f"{kind}.{symbol}" for kind in ("resources", "modules", "variables", "outputs")
            for symbol, body in tree.get(kind, {}).items() if _mentions(body, name)}


def _secure(path: str) -> set[str]:
    return {name for name, parameter in bicep_trees()[path]["parameters"].items()
            if {"type": "secure"} in parameter["decorators"]}


def test_the_push_credentials_go_only_into_the_hub():
    """Apple's and Google's secrets reach the hub and nothing else: no app setting,
    no output, no other resource (a secure parameter stays out of deployment history)."""
    assert _secure(NH), "the APNs and FCM v1 secrets must be @secure() parameters"
    variables = bicep_trees()[NH]["variables"]
    for name in _secure(NH):
        used = _where_used(NH, name)
        # A variable may only ask whether it was given (`!empty(...)`), never hold it.
        tests = {f"variables.{v}" for v in variables
                 if f"variables.{v}" in used and "empty" in json.dumps(variables[v])
                 and _only_emptiness(variables[v]["value"], name)}
        assert used - tests == {"resources.hub"}, name
    module = bicep_trees()[MAIN]["modules"]["notificationHubs"]["config"]["params"]
    for name in _secure(MAIN):
        assert _where_used(MAIN, name) == {"modules.notificationHubs"}, name
        assert module[name] == name
        assert name in _secure(NH), f"{name} would lose @secure() in the module"
        assert bicep_trees()[MAIN]["parameters"][name]["default"] == "", (
            f"{name}: a hub without it must deploy")


def test_the_app_gets_a_hub_rule_with_listen_and_send_only():
    """The app registers installations (Listen) and sends (Send); Manage it never needs.
    Only a hub-level rule can send (Notification Hubs security)."""
    rule = _resources(NH)["appRule"]
    assert rule["type"].endswith("/notificationHubs/authorizationRules")
    assert sorted(rule["config"]["properties"]["rights"]) == ["Listen", "Send"], NH_SECURITY
    assert rule["config"]["parent"] == "hub"
    rules = [r for tree in bicep_trees().values() for r in tree["resources"].values()
             if r["type"].endswith("/authorizationRules")]
    assert rules == [rule], "one rule: the app's"


def test_its_connection_string_reaches_the_app_only_through_key_vault():
    secret = _resources(NH)["connectionSecret"]
    assert secret["type"] == "Microsoft.KeyVault/vaults/secrets"
    value = secret["config"]["properties"]["value"]["operator"]
    assert value["type"] == "property_accessor"
    assert value["operands"]["operand_1"]["operator"]["operands"] == {
        "operand_1": "appRule", "func_name": "listKeys"}
    assert value["operands"]["operand_2"] == "primaryConnectionString"
    vault = _resources(NH)["vault"]
    assert vault["existing"] and secret["config"]["parent"] == "vault"
    assert vault["config"]["name"] == "keyVaultName"
    # The vault is the app's (main passes vault.outputs.name), the entry the one the
    # app's Key Vault reference names.
    nh_module = typed_trees()[MAIN]["modules"]["notificationHubs"]["config"]["params"]
    app_module = typed_trees()[MAIN]["modules"]["functionApp"]["config"]["params"]
    assert json.dumps(nh_module["keyVaultName"]) == json.dumps(app_module["keyVaultName"])
    assert "connectionVaultEntry" in json.dumps(app_module["notificationHubsVaultEntry"])
    assert "hubName" in json.dumps(app_module["notificationHubName"])
    settings = app_settings()
    assert settings["NOTIFICATION_HUBS_CONNECTION"] == (
        "@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=${notificationHubsVaultEntry})")
    assert settings["NOTIFICATION_HUBS_HUB"] == "notificationHubName"
    assert _where_used(NH, "appRule") == {"resources.connectionSecret", "outputs.ruleName"}


def test_the_tier_is_free_unless_chosen_basic_or_standard():
    parameter = bicep_trees()[MAIN]["parameters"]["notificationHubsSku"]
    assert parameter["default"] == "Free"
    [allowed] = [d["argument"] for d in parameter["decorators"] if d["type"] == "allowed"]
    assert allowed == ["Free", "Basic", "Standard"]
    module = bicep_trees()[MAIN]["modules"]["notificationHubs"]["config"]["params"]
    assert module["sku"] == "notificationHubsSku"
    namespace = _resources(NH)["namespace"]["config"]
    assert namespace["sku"] == {"name": "sku"}
    assert namespace["properties"]["namespaceType"] == "NotificationHub"


def test_apns_endpoints_are_apples_two():
    """Sandbox for development builds, production for TestFlight and the App Store."""
    endpoints = evaluate({"identifier": "apnsEndpoints"}, typed_trees()[NH], {})
    assert endpoints == {
        "sandbox": "https://api.development.push.apple.com:443/3/device",
        "production": "https://api.push.apple.com:443/3/device",
    }, NH_APNS_TOKEN


def _hub_properties(**params: str) -> dict[str, Any]:
    tree = typed_trees()[NH]
    defaults = {name: "" for name in tree["parameters"]} | {"apnsEnvironment": "production"}
    hub = resource_body(tree["resources"]["hub"])
    # replace() with Bicep's escapes is beyond evaluate(): the key is checked as given.
    body = json.loads(json.dumps(hub["properties"]).replace(
        '{"function": {"type": "replace", "parameters": {"string": {"identifier": '
        '"fcmV1PrivateKey"}, "old_value": "\\\\\\\\n", "new_value": "\\\\n"}}}',
        '{"identifier": "fcmV1PrivateKey"}'))
    return evaluate(body, tree, defaults | params)


def test_each_platform_gets_credentials_only_when_given():
    assert _hub_properties() == {}
    token = _hub_properties(apnsKeyId="ABC123DEFG", apnsTeamId="TEAM123456",
                            apnsBundleId="com.example.app", apnsToken="MIGT...")
    assert token == {"apnsCredential": {"properties": {
        "endpoint": "https://api.push.apple.com:443/3/device", "keyId": "ABC123DEFG",
        "appId": "TEAM123456", "appName": "com.example.app", "token": "MIGT..."}}}
    certificate = _hub_properties(apnsCertificate="MIIK...", apnsCertificateKey="pw",
                                  apnsEnvironment="sandbox")
    assert certificate == {"apnsCredential": {"properties": {
        "endpoint": "https://api.development.push.apple.com:443/3/device",
        "apnsCertificate": "MIIK...", "certificateKey": "pw"}}}
    fcm = _hub_properties(fcmV1ProjectId="demo-app", fcmV1ClientEmail="push@demo-app.iam",
                          fcmV1PrivateKey="-----BEGIN PRIVATE KEY-----")
    assert fcm == {"fcmV1Credential": {"properties": {
        "projectId": "demo-app", "clientEmail": "push@demo-app.iam",
        "privateKey": "-----BEGIN PRIVATE KEY-----"}}}


def test_the_private_keys_escaped_line_breaks_become_line_breaks():
    """A service account's JSON writes the key's line breaks as `\\n`; NH takes the PEM."""
    text = (INFRA / "app" / "notification-hubs.bicep").read_text()
    assert "privateKey: replace(fcmV1PrivateKey, '\\\\n', '\\n')" in text


def _types(version: str) -> list[dict[str, Any]]:
    return json.loads((SCRIPTS / "types" / "microsoft.notificationhubs" / version
                       / "types.json").read_text())


def _hub_property_names(version: str) -> set[str]:
    types = _types(version)
    [hub] = [e for e in types if e["$type"] == "ResourceType"
             and e["name"] == f"Microsoft.NotificationHubs/namespaces/notificationHubs@{version}"]

    def get(ref: dict[str, str]) -> dict[str, Any]:
        return types[int(ref["$ref"].rsplit("/", 1)[1])]

    return set(get(get(hub["body"])["properties"]["properties"]["type"])["properties"])


def test_only_the_hub_is_on_a_preview_api_version_and_only_for_fcm_v1():
    """2023-10-01-preview is the first hub API version with `fcmV1Credential`
    (Microsoft's template change log); when a stable one has it, the hub moves there."""
    previews = {(r["type"], r["api_version"]) for tree in bicep_trees().values()
                for r in tree["resources"].values() if "preview" in r["api_version"]}
    hub = _resources(NH)["hub"]
    assert previews == {(hub["type"], hub["api_version"])}
    assert "fcmV1Credential" in _hub_property_names(hub["api_version"])
    stable = sorted(p.name for p in (SCRIPTS / "types" / "microsoft.notificationhubs").iterdir()
                    if "preview" not in p.name)
    assert stable, "no stable Microsoft.NotificationHubs types copied"
    for version in stable:
        assert "fcmV1Credential" not in _hub_property_names(version), (
            f"{version} sets fcmV1Credential: move the hub to it ({NH_TEMPLATE_CHANGES})")
    namespace_version = _resources(NH)["namespace"]["api_version"]
    assert namespace_version == stable[-1]


def _queue_triggers() -> list[tuple[str, dict[str, Any]]]:
    return [(function_json.parent.name, binding)
            for function_json in sorted(ROOT.glob("*/function.json"))
            for binding in json.loads(function_json.read_text())["bindings"]
            if binding["type"] == "queueTrigger"]


def _provisioned_queues() -> set[str]:
    params = {"pushQueueName": bicep_trees()[MAIN]["modules"]["storage"]["config"]["params"][
        "pushQueueName"]}
    tree = typed_trees()[STORAGE]
    return {evaluate(resource["config"]["name"], tree, params)
            for resource in tree["resources"].values()
            if resource["type"] == "Microsoft.Storage/storageAccounts/queueServices/queues"}


def test_every_queue_trigger_reads_a_provisioned_queue_with_its_poison_queue():
    triggers = _queue_triggers()
    assert triggers, "push_notify's queueTrigger is missing"
    read = set()
    for function, binding in triggers:
        name = binding["queueName"]
        assert not name.startswith("%"), f"{function}: give the queue's name as infra/ creates it"
        read |= {name, f"{name}-poison"}
        # The host's identity-based connection (the app's queue client uses it too).
        connection = binding.get("connection") or "AzureWebJobsStorage"
        settings = app_settings()
        assert f"{connection}__queueServiceUri" in settings, IDENTITY_CONNECTIONS
        assert settings[f"{connection}__credential"] == "managedidentity"
        assert settings[f"{connection}__clientId"] == "identityClientId"
    assert _provisioned_queues() == read, POISON


def _grants() -> dict[str, set[str]]:
    """Role names granted in storage.bicep, by the symbol of their scope."""
    tree = typed_trees()[STORAGE]
    found: dict[str, set[str]] = {}
    for resource in tree["resources"].values():
        if resource["type"] != "Microsoft.Authorization/roleAssignments":
            continue
        body = resource_body(resource)
        scope = json.dumps(body["scope"])
        target = ("pushPoisonQueue" if "pushPoisonQueue" in scope else "pushQueue"
                  if "pushQueue" in scope else "storage")
        role = body["properties"]["roleDefinitionId"]["function"]["parameters"]["resource_name_1"]
        loop = resource["config"].get("loop_type")
        if loop:
            items = evaluate(loop["detail"]["array_name"], tree, {})
            ids = [evaluate(role, tree, {loop["detail"]["item_name"]: item}) for item in items]
        else:
            ids = [evaluate(role, tree, {})]
        assert body["properties"]["principalId"] == {"identifier": "appPrincipalId"}
        found.setdefault(target, set()).update(ROLES[i] for i in ids)
    return found


def test_queue_roles_are_the_bindings_own_on_the_queues_only():
    """Trigger: Reader and Message Processor; enqueueing: Message Sender; the poison
    queue: Message Sender, for the host to move a message there. Nothing queue-wide on
    the account: the host needs Queue Data Contributor only for blob triggers."""
    grants = _grants()
    assert grants["pushQueue"] == {"Storage Queue Data Reader",
                                   "Storage Queue Data Message Processor",
                                   "Storage Queue Data Message Sender"}, QUEUE_PERMISSIONS
    assert grants["pushPoisonQueue"] == {"Storage Queue Data Message Sender"}, POISON
    assert grants["storage"] == {"Storage Blob Data Owner", "Storage Table Data Contributor"}
    blob_triggers = [f for f in ROOT.glob("*/function.json")
                     if '"blobTrigger"' in f.read_text()]
    assert not blob_triggers, f"a blob trigger needs Queue Data Contributor ({HOST_STORAGE})"
