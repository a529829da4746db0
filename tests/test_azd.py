"""azure.yaml, infra/main.parameters.json and the postprovision hook agree with the Bicep."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import yaml
from infra_support import INFRA, ROOT, bicep_trees, run_tool

HOOK = INFRA / "hooks" / "postprovision.sh"


def _azure_yaml() -> dict:
    return yaml.safe_load((ROOT / "azure.yaml").read_text())


def test_azd_deploys_the_project_as_a_python_function_app_to_the_tagged_app():
    services = _azure_yaml()["services"]
    assert list(services) == ["api"]
    assert services["api"] == {"project": ".", "language": "python", "host": "function"}
    site = bicep_trees()["infra/app/function-app.bicep"]["resources"]["functionApp"]["config"]
    assert {"'azd-service-name'": "api"} in site["tags"]["function"]["parameters"].values()


def test_every_hook_exists_and_passes_shellcheck():
    hooks = _azure_yaml()["hooks"]
    assert set(hooks) == {"postprovision"}
    script = ROOT / hooks["postprovision"]["run"]
    assert script == HOOK.resolve() or script.resolve() == HOOK.resolve()
    assert os.access(HOOK, os.X_OK)
    result = run_tool("shellcheck", "--shell=sh", str(HOOK), check=False)
    assert result.returncode == 0, result.stdout


def test_parameters_come_from_the_azd_environment_and_cover_the_required_ones():
    parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    declared = bicep_trees()["infra/main.bicep"]["parameters"]
    assert set(parameters) <= set(declared)
    required = {name for name, p in declared.items() if p["default"] is None}
    assert required <= set(parameters), f"azd would only prompt for {required - set(parameters)}"
    for name, entry in parameters.items():
        # Only references to the azd environment: no value, and so no secret, lives in the file.
        assert re.fullmatch(r"\$\{[A-Z_]+(=[A-Za-z]*)?\}", entry["value"]), (name, entry)


def _outputs() -> set[str]:
    return set(bicep_trees()["infra/main.bicep"]["outputs"])


def _run_hook(tmp_path, **env: str) -> subprocess.CompletedProcess[str]:
    """The hook as azd runs it after provisioning, without a terminal or the Azure CLI."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in ("sh", "dirname", "pwd"):
        found = shutil.which(name)
        if found:
            (bin_dir / name).symlink_to(found)
    return subprocess.run(["sh", str(HOOK)], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, env={"PATH": str(bin_dir), **env},
                          timeout=60, check=False)


AZD_ENV = {
    "AZURE_KEY_VAULT_NAME": "kv-abc123",
    "AZURE_FUNCTION_APP_NAME": "func-abc123",
    "AZURE_RESOURCE_GROUP": "rg-prod",
    "PUBLIC_ORIGIN": "https://func-abc123.azurewebsites.net",
    "TWILIO_AUTH_TOKEN_KV_NAME": "twilio-auth-token",
    "TWILIO_API_KEY_KV_NAME": "twilio-api-key-secret",
}


def test_hook_reads_only_outputs_the_bicep_gives():
    used = set(re.findall(r"\$\{([A-Z_]+)", HOOK.read_text())) - {"TWILIO_API_KEY_SID"}
    assert used <= _outputs()
    assert set(AZD_ENV) <= _outputs()


def test_hook_prints_the_secret_commands_and_the_twilio_urls(tmp_path):
    result = _run_hook(tmp_path, **AZD_ENV)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "az keyvault secret set --vault-name kv-abc123 --name twilio-auth-token" in out
    assert "twilio-api-key-secret" not in out  # no API key configured
    assert ("'A message comes in': Webhook, HTTP POST, "
            "https://func-abc123.azurewebsites.net/api/twiml") in out
    assert "SmsUrl=https://func-abc123.azurewebsites.net/api/twiml" in out
    assert "az functionapp restart --resource-group rg-prod --name func-abc123" in out
    assert ("az functionapp keys list --resource-group rg-prod --name func-abc123 "
            "--query functionKeys.default") in out


def test_hook_asks_for_the_api_key_secret_when_a_key_is_configured(tmp_path):
    result = _run_hook(tmp_path, **AZD_ENV, TWILIO_API_KEY_SID="SK" + "b2" * 16)
    assert result.returncode == 0, result.stderr
    assert "--name twilio-api-key-secret" in result.stdout


def test_hook_refuses_to_run_outside_azd(tmp_path):
    result = _run_hook(tmp_path)
    assert result.returncode != 0
    assert "run by azd after provisioning" in result.stderr


DEPLOY_DOC = ROOT / "docs" / "deploy.md"
# Variables azd itself keeps in every environment.
AZD_OWN = {"AZURE_ENV_NAME", "AZURE_LOCATION", "AZURE_SUBSCRIPTION_ID", "AZURE_PRINCIPAL_ID"}


def test_the_guide_uses_only_variables_azd_has():
    text = DEPLOY_DOC.read_text()
    parameters = (INFRA / "main.parameters.json").read_text()
    read = set(re.findall(r"azd env get-value ([A-Z_]+)", text))
    assert read and read <= _outputs() | AZD_OWN, read - _outputs() - AZD_OWN
    written = set(re.findall(r"azd env set ([A-Z_]+)", text))
    assert written and all(f"${{{name}" in parameters for name in written), written


def test_every_footnote_of_the_guide_has_a_source():
    text = DEPLOY_DOC.read_text()
    cited = set(re.findall(r"\[\^([\w-]+)\](?!:)", text))
    defined = dict(re.findall(r"^\[\^([\w-]+)\]: (.+)$", text, re.M))
    assert cited == set(defined), (cited ^ set(defined))
    assert all("https://" in source or "PyPI" in source for source in defined.values())
