""".github/workflows: valid against GitHub's schema, and deploying the way docs/deploy.md says.

Validation is offline (check-jsonschema's built-in copy of the workflow
schema). actionlint's PyPI wheel downloads its binary from GitHub when it is
built, so it runs in the GitHub workflow itself (ci.yml), not here.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from infra_support import ROOT, bicep_trees, run_tool

WORKFLOWS = ROOT / ".github" / "workflows"
STAGED = ROOT / ".cache" / "package" / "app"  # infra/package_app.py's default --dest


def _load(name: str) -> dict:
    workflow = yaml.safe_load((WORKFLOWS / name).read_text())
    workflow["on"] = workflow.pop(True, workflow.get("on"))  # YAML 1.1 reads `on` as true
    return workflow


def _validate(*paths: Path) -> tuple[int, str]:
    result = run_tool("check-jsonschema", "--builtin-schema", "vendor.github-workflows",
                      *map(str, paths), check=False)
    return result.returncode, result.stdout + result.stderr


def test_workflows_validate_against_githubs_schema():
    files = sorted(WORKFLOWS.glob("*.yml")) + sorted(WORKFLOWS.glob("*.yaml"))
    assert {f.name for f in files} >= {"ci.yml", "deploy.yml"}
    code, output = _validate(*files)
    assert code == 0, output


def test_the_validator_refuses_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  test:\n    runs-on: ubuntu-24.04\n    steps: make test\n")
    code, output = _validate(broken)
    assert code != 0 and "steps" in output


def test_every_push_runs_make_test():
    ci = _load("ci.yml")
    assert "push" in ci["on"] and "pull_request" in ci["on"] and "workflow_call" in ci["on"]
    runs = [step.get("run", "") for step in ci["jobs"]["test"]["steps"]]
    assert "make test" in runs
    deploy = _load("deploy.yml")
    # main is excluded from ci.yml's push trigger because deploy.yml runs it there.
    assert ci["on"]["push"] == {"branches-ignore": ["main"]}
    assert deploy["on"]["push"] == {"branches": ["main"]}
    assert deploy["jobs"]["test"]["uses"] == "./.github/workflows/ci.yml"


def test_deploy_logs_in_with_oidc_and_publishes_to_flex_consumption():
    deploy = _load("deploy.yml")
    job = deploy["jobs"]["deploy"]
    assert job["needs"] == "test"
    assert job["permissions"] == {"contents": "read", "id-token": "write"}
    assert deploy["permissions"] == {"contents": "read"}
    steps = {step["uses"].split("@")[0]: step for step in job["steps"] if "uses" in step}
    login = steps["azure/login"]["with"]
    assert set(login) == {"client-id", "tenant-id", "subscription-id"}
    publish = steps["Azure/functions-action"]["with"]
    assert publish["sku"] == "flexconsumption"
    assert "publish-profile" not in publish


def test_deploy_ships_the_package_built_for_azure_without_a_remote_build():
    """The workflow stages the package as azd does and deploys it as it is."""
    steps = _load("deploy.yml")["jobs"]["deploy"]["steps"]
    names = [step.get("uses", step.get("run", "")).split("@")[0] for step in steps]
    build = names.index("python infra/package_app.py")
    assert names.index("actions/setup-python") < build < names.index("Azure/functions-action")
    [setup] = [s for s in steps if s.get("uses", "").startswith("actions/setup-python@")]
    assert setup["with"]["python-version"] == "3.13"
    [publish] = [s["with"] for s in steps
                 if s.get("uses", "").startswith("Azure/functions-action@")]
    assert publish["remote-build"] is False
    assert ROOT / publish["package"] == STAGED
    azure_yaml = yaml.safe_load((ROOT / "azure.yaml").read_text())
    assert ROOT / azure_yaml["services"]["api"]["dist"] == STAGED


def test_no_workflow_uses_a_stored_secret():
    for path in WORKFLOWS.glob("*.y*ml"):
        assert "secrets." not in path.read_text(), path


def test_deploy_identity_trusts_the_environment_the_job_runs_in():
    job = _load("deploy.yml")["jobs"]["deploy"]
    tree = bicep_trees()["infra/app/github-deploy.bicep"]
    [federation] = [r["config"] for r in tree["resources"].values()
                    if r["type"].endswith("/federatedIdentityCredentials")]
    subject = federation["properties"]["subject"]
    assert subject == "repo:${githubRepository}:environment:" + job["environment"]


def test_docs_set_every_variable_the_workflow_reads():
    used = set(re.findall(r"vars\.([A-Z_]+)", (WORKFLOWS / "deploy.yml").read_text()))
    docs = (ROOT / "docs" / "deploy.md").read_text()
    documented = set(re.findall(r"gh variable set ([A-Z_]+)", docs))
    assert used == documented
