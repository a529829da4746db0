"""azure.yaml and infra/main.parameters.json agree with the Bicep.

The hooks azure.yaml names are tested in test_infra_postprovision.py (and the
packaging one in test_deploy_package.py).
"""

from __future__ import annotations

import json
import re

import yaml
from infra_support import INFRA, ROOT, bicep_trees

HOOK = INFRA / "hooks" / "postprovision.sh"


def _azure_yaml() -> dict:
    return yaml.safe_load((ROOT / "azure.yaml").read_text())


def test_azd_deploys_the_project_as_a_python_function_app_to_the_tagged_app():
    services = _azure_yaml()["services"]
    assert list(services) == ["api"]
    assert services["api"] == {"project": ".", "language": "python", "host": "function"}
    site = bicep_trees()["infra/app/function-app.bicep"]["resources"]["functionApp"]["config"]
    assert {"'azd-service-name'": "api"} in site["tags"]["function"]["parameters"].values()


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
