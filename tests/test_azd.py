"""azure.yaml and infra/main.parameters.json agree with the Bicep.

The hooks azure.yaml names are tested in test_infra_postprovision.py (and the
packaging one in test_deploy_package.py).
"""

from __future__ import annotations

import json
import os
import re

import yaml
from infra_support import INFRA, ROOT, SCRIPTS, bicep_trees, run_tool

AZD_SCHEMA = SCRIPTS / "schemas" / "azure.yaml.json"
STAGED = ROOT / ".cache" / "package" / "app"  # infra/package_app.py's default --dest


def _azure_yaml() -> dict:
    return yaml.safe_load((ROOT / "azure.yaml").read_text())


def test_azd_deploys_the_staged_package_to_the_tagged_function_app():
    """azd zips the folder infra/package_app.py stages, and builds nothing remotely."""
    services = _azure_yaml()["services"]
    assert list(services) == ["api"]
    api = services["api"]
    assert {key: api[key] for key in ("project", "language", "host")} == {
        "project": ".", "language": "python", "host": "function"}
    assert api["remoteBuild"] is False
    assert ROOT / api["dist"] == STAGED
    assert api["hooks"] == {"prepackage": {"shell": "sh", "run": "./infra/hooks/prepackage.sh"}}
    assert set(api) == {"project", "language", "host", "dist", "remoteBuild", "hooks"}
    # azd applies `remoteBuild` to function apps from 1.24.0 on; older ones would build remotely.
    assert _azure_yaml()["requiredVersions"] == {"azd": ">= 1.24.0"}
    site = bicep_trees()["infra/app/function-app.bicep"]["resources"]["functionApp"]["config"]
    assert {"'azd-service-name'": "api"} in site["tags"]["function"]["parameters"].values()


def test_azure_yaml_validates_against_azds_schema(tmp_path):
    result = run_tool("check-jsonschema", "--schemafile", str(AZD_SCHEMA),
                      str(ROOT / "azure.yaml"), check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    broken = tmp_path / "azure.yaml"
    broken.write_text((ROOT / "azure.yaml").read_text().replace(
        "remoteBuild: false", 'remoteBuild: "no"'))
    result = run_tool("check-jsonschema", "--schemafile", str(AZD_SCHEMA), str(broken),
                      check=False)
    assert result.returncode != 0 and "remoteBuild" in result.stdout


def test_every_hook_script_exists_and_passes_shellcheck():
    yaml_hooks = _azure_yaml()["hooks"] | _azure_yaml()["services"]["api"]["hooks"]
    assert set(yaml_hooks) == {"postprovision", "prepackage"}
    for hook in yaml_hooks.values():
        script = (ROOT / hook["run"]).resolve()
        assert script.parent == INFRA / "hooks" and os.access(script, os.X_OK), script
        result = run_tool("shellcheck", "--shell=sh", str(script), check=False)
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
