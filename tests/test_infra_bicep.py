"""infra/: the Bicep parses, passes checkov, and says what the deployment promises.

Nothing here can reach Azure: the Bicep CLI and Azure itself are out of reach,
so these checks hold the files to their syntax (pycep-parser), to checkov's
Azure policies, and to the promises docs/deploy.md makes about them.
"""

from __future__ import annotations

import json
import re

from infra_support import INFRA, ROOT, bicep_files, bicep_trees, resource_body, resources, run_tool

SKIP_COMMENT = re.compile(r"checkov:skip=([A-Z0-9_]+)")


def _checkov_report() -> dict:
    result = run_tool("checkov", "-d", str(INFRA), "--framework", "bicep", "--skip-download",
                      "-o", "json", check=False)
    assert result.returncode == 0, f"checkov exited {result.returncode}: {result.stderr}"
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    [bicep] = [r for r in reports if r.get("check_type") == "bicep"]
    return bicep


def test_every_bicep_file_parses():
    trees = bicep_trees()
    assert set(trees) == {str(p.relative_to(ROOT)) for p in bicep_files()}
    assert "infra/main.bicep" in trees
    assert trees["infra/main.bicep"]["globals"]["scope"]["value"] == "subscription"


def test_checkov_passes_and_every_suppression_says_why():
    report = _checkov_report()
    summary = report["summary"]
    # checkov exits 0 on a file it cannot parse: its summary is the only sign.
    assert summary["parsing_errors"] == 0, report["results"].get("parsing_errors")
    assert summary["resource_count"] > 0 and summary["passed"] > 0
    failed = [(c["check_id"], c["resource"], c["check_name"])
              for c in report["results"]["failed_checks"]]
    assert not failed, f"checkov failed checks: {failed}"

    skipped = report["results"]["skipped_checks"]
    unexplained = [(c["check_id"], c["resource"]) for c in skipped
                   if c["check_result"]["suppress_comment"].strip() in ("", "No comment provided")]
    assert not unexplained, f"suppressions without a reason: {unexplained}"

    # Every suppression written in the files suppresses a check that ran: none is stale.
    written = {(path.name, match) for path in bicep_files()
               for match in SKIP_COMMENT.findall(path.read_text())}
    applied = {(c["file_path"].rsplit("/", 1)[-1], c["check_id"]) for c in skipped}
    assert written == applied, f"suppressions that suppress nothing: {written - applied}"


def test_flex_consumption_linux_python_313():
    [(_, plan)] = resources("Microsoft.Web/serverfarms")
    assert plan["sku"] == {"tier": "FlexConsumption", "name": "FC1"}
    assert plan["properties"]["reserved"] is True  # Linux
    [(_, site)] = [(p, r) for p, r in resources("Microsoft.Web/sites") if "kind" in r]
    assert site["kind"] == "functionapp,linux"
    config = site["properties"]["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.13"}
    assert config["deployment"]["storage"]["authentication"]["type"] == "UserAssignedIdentity"
    assert site["properties"]["httpsOnly"] is True


def test_the_app_runs_as_its_user_assigned_identity_everywhere():
    [(_, site)] = [(p, r) for p, r in resources("Microsoft.Web/sites") if "kind" in r]
    assert site["identity"]["type"] == "UserAssigned"
    assert site["properties"]["keyVaultReferenceIdentity"] == "identityId"
    [vault] = [resource["config"] for tree in bicep_trees().values()
               for resource in tree.get("resources", {}).values()
               if resource["type"] == "Microsoft.KeyVault/vaults" and not resource["existing"]]
    assert vault["properties"]["enableRbacAuthorization"] is True
    [(_, storage)] = resources("Microsoft.Storage/storageAccounts")
    assert storage["properties"]["allowSharedKeyAccess"] is False
    assert storage["properties"]["allowBlobPublicAccess"] is False


def test_storage_data_roles_go_to_the_app_identity_only():
    assignments = [resource_body(r) for path, tree in bicep_trees().items()
                   if path == "infra/app/storage.bicep"
                   for r in tree["resources"].values()
                   if r["type"] == "Microsoft.Authorization/roleAssignments"]
    assert len(assignments) == 4  # blob and table on the account, the push queue, its poison queue
    assert {a["properties"]["principalId"] for a in assignments} == {"appPrincipalId"}
    params = bicep_trees()["infra/main.bicep"]["modules"]["storage"]["config"]["params"]
    assert params["appPrincipalId"] == _identity_output("principalId")


def _identity_output(name: str) -> dict:
    """pycep's tree for ``identity.outputs.<name>``."""
    def accessor(left: str, right: object) -> dict:
        return {"operator": {"type": "property_accessor",
                             "operands": {"operand_1": left, "operand_2": right}}}

    return accessor("identity", accessor("outputs", name))


# The push credentials are the only secrets Bicep takes (Apple's and Google's, which
# the hub itself must hold), and the hub rule's connection string the only key it
# reads (Azure makes it; it goes straight into Key Vault). tests/test_infra_push.py
# follows each to where it may go.
SECURE_PARAMETERS = {
    "infra/main.bicep": {"apnsToken", "apnsCertificate", "apnsCertificateKey", "fcmV1PrivateKey"},
    "infra/app/notification-hubs.bicep": {"apnsToken", "apnsCertificate", "apnsCertificateKey",
                                          "fcmV1PrivateKey"},
}


def test_no_secret_is_taken_or_read_but_the_push_credentials_and_the_hub_key():
    for path in bicep_files():
        text = path.read_text()
        keys_read = re.findall(r"\b(list(?:Keys|Secrets|AccountSas|ServiceSas))\s*\(", text)
        if path.name == "notification-hubs.bicep":
            assert keys_read == ["listKeys"], path
        else:
            assert not keys_read, f"{path}: secrets are set in Key Vault, never read by Bicep"
    for path, tree in bicep_trees().items():
        secure = {name for name, parameter in tree.get("parameters", {}).items()
                  if {"type": "secure"} in parameter["decorators"]}
        assert secure == SECURE_PARAMETERS.get(path, set()), (path, secure)
        for name in tree.get("outputs", {}):
            assert not re.search(r"secret|password|key$", name, re.I), (path, name)


def _route_paths(authorization: str) -> set[str]:
    prefix = json.loads((ROOT / "host.json").read_text())["extensions"]["http"]["routePrefix"]
    paths = set()
    for function_json in ROOT.glob("*/function.json"):
        bindings = json.loads(function_json.read_text())["bindings"]
        for binding in bindings:
            if binding["type"] == "httpTrigger" and binding.get("authLevel") == authorization:
                route = binding.get("route") or function_json.parent.name
                paths.add(f"/{prefix}/{route.split('/{')[0]}")
    return paths


def test_authentication_leaves_exactly_twilios_webhooks_anonymous():
    tree = bicep_trees()["infra/app/function-app.bicep"]
    [auth] = [r["config"] for r in tree["resources"].values()
              if r["config"].get("name") == "authsettingsV2"]
    validation = auth["properties"]["globalValidation"]
    assert validation["requireAuthentication"] is True
    assert validation["unauthenticatedClientAction"] == "Return401"
    excluded = set(tree["variables"][validation["excludedPaths"]]["value"])

    anonymous = _route_paths("anonymous")
    keyed = _route_paths("function")
    assert "/api/twiml" in anonymous and "/api/make_call" in keyed
    assert anonymous <= excluded, f"Twilio could not reach {anonymous - excluded}"
    assert not keyed & excluded, f"the mobile app's functions must need a user: {keyed & excluded}"
    # The rest are Twilio webhooks still to come (issue: twiml, status_callback, voice).
    assert excluded - anonymous <= {"/api/status_callback", "/api/voice", "/api/call_events"}


def test_allowed_countries_is_a_required_parameter():
    parameter = bicep_trees()["infra/main.bicep"]["parameters"]["allowedCountries"]
    assert parameter["default"] is None
    assert {"type": "min_length", "argument": 2} in parameter["decorators"]


def test_sampling_never_drops_requests_or_exceptions():
    sampling = json.loads((ROOT / "host.json").read_text())["logging"]["applicationInsights"][
        "samplingSettings"]
    assert sampling["isEnabled"] is True
    assert {"Request", "Exception"} <= set(sampling["excludedTypes"].split(";"))
