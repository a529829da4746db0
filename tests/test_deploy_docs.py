"""docs/deploy.md stays true to infra/, azd and the app, where a test can hold it.

The guide is one path from nothing to a deployed app: every variable it sets
is a parameter, every one it reads an output, every required parameter is
set, the optional ones are named, the log markers its queries look for are
the ones the app writes, and its steps come in order. (Its settings table is
tests/test_infra_settings.py's.)
"""

from __future__ import annotations

import json
import re

from infra_support import INFRA, ROOT, bicep_trees

DEPLOY_DOC = ROOT / "docs" / "deploy.md"
STORAGE_DOC = ROOT / "docs" / "storage.md"
# Variables azd itself keeps in every environment (azd env new sets them).
AZD_OWN = {"AZURE_ENV_NAME", "AZURE_LOCATION", "AZURE_SUBSCRIPTION_ID", "AZURE_PRINCIPAL_ID"}


def _text() -> str:
    return DEPLOY_DOC.read_text()


def _parameter_variables() -> dict[str, str]:
    """Bicep parameter -> the azd environment variable main.parameters.json reads it from."""
    parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    return {name: re.match(r"\$\{([A-Z_]+)", entry["value"])[1]
            for name, entry in parameters.items()}


def _outputs() -> set[str]:
    return set(bicep_trees()["infra/main.bicep"]["outputs"])


def test_the_guide_reads_only_variables_azd_has():
    read = set(re.findall(r"azd env get-value ([A-Z_]+)", _text()))
    assert read and read <= _outputs() | AZD_OWN, read - _outputs() - AZD_OWN


def test_every_variable_the_guide_sets_is_a_parameter():
    written = set(re.findall(r"azd env set ([A-Z_]+)", _text()))
    assert written and written <= set(_parameter_variables().values()), (
        written - set(_parameter_variables().values()))


def test_the_guide_sets_every_required_parameter():
    """What azd would otherwise stop and ask for, the guide sets in order."""
    declared = bicep_trees()["infra/main.bicep"]["parameters"]
    required = {_parameter_variables()[name] for name, p in declared.items()
                if p["default"] is None and name in _parameter_variables()}
    written = set(re.findall(r"azd env set ([A-Z_]+)", _text()))
    assert {"AZURE_ENV_NAME", "AZURE_LOCATION"} <= required
    assert re.search(r"azd env new \w+ --location \"\$REGION\"", _text())
    assert required - AZD_OWN <= written, f"the guide never sets {required - AZD_OWN - written}"


def test_the_guide_names_every_optional_parameter():
    declared = bicep_trees()["infra/main.bicep"]["parameters"]
    text = _text()
    for name, variable in _parameter_variables().items():
        if declared[name]["default"] is not None and variable not in AZD_OWN:
            assert f"`{variable}`" in text or f"azd env set {variable}" in text, variable
    for name in declared:
        if name not in _parameter_variables():
            assert f"`{name}`" in text, f"Bicep parameter {name} is not in the guide"


def test_every_footnote_of_the_guide_has_a_source():
    text = _text()
    cited = set(re.findall(r"\[\^([\w-]+)\](?!:)", text))
    defined = dict(re.findall(r"^\[\^([\w-]+)\]: (.+)$", text, re.M))
    assert cited == set(defined), (cited ^ set(defined))
    assert all("https://" in source or "PyPI" in source for source in defined.values())


def test_the_steps_come_in_order_from_nothing_to_teardown():
    steps = re.findall(r"^## (\d+)\. (.+)$", _text(), re.M)
    assert [int(number) for number, _ in steps] == list(range(1, len(steps) + 1))
    titles = " / ".join(title for _, title in steps)
    for topic in ("region", "Twilio", "sign-in", "azd up", "Point Twilio", "first SMS",
                  "Checks after deploying", "GitHub", "Logs", "Rotating", "Teardown"):
        assert topic in titles, f"no step about {topic}: {titles}"
    text = _text()
    for command in ("az functionapp list-flexconsumption-runtimes", "azd down --purge",
                    "az keyvault list-deleted", "azd provision", "azd hooks run postprovision"):
        assert command in text, command


def test_the_queries_look_for_what_the_app_logs():
    """Each marker a KQL query searches for is written by the app's code."""
    queries = "\n".join(re.findall(r"```kusto\n(.*?)```", _text(), re.S))
    assert len(re.findall(r"^traces|^union", queries, re.M)) >= 5
    markers = set(re.findall(r'"([a-z_]+=[a-z]*)', queries)) | set(
        re.findall(r'@"([a-z_]+)=', queries))
    assert {"store=unavailable", "twilio_code", "problem", "function"} <= markers
    code = "\n".join(p.read_text() for p in (ROOT / "shared").glob("*.py"))
    for marker in markers:
        assert marker in code or f"{marker}=" in code, f"the app never logs {marker!r}"
    for phrase in ("ALLOWED_COUNTRIES", "WEBSITE_AUTH_ENABLED", "no storage connection"):
        assert phrase in code


def test_nothing_stale_remains():
    text = _text()
    assert "does not rate-limit" not in text
    assert "once the app has a" not in text
    assert "remote build: Azure installs" not in text
    assert "/.auth/login/apple" not in text
    assert "Sign in with Apple is not offered" in text


def test_table_commands_sign_in_as_shared_keys_are_off():
    """Shared keys are off: every `az storage` command must sign in and name the account."""
    for doc in (DEPLOY_DOC, STORAGE_DOC):
        commands = re.findall(r"az storage (?:entity|table) \w+[^`\n]*", doc.read_text())
        assert commands, doc
        for command in commands:
            assert "--auth-mode login" in command and "--account-name" in command, (doc, command)
