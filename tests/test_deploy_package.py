"""The deployment package: what `func`/`azd` zip after `.funcignore`, and that it runs alone.

Both matchers a deploying tool may apply to `.funcignore` are used (gitignore
semantics, and Core Tools' start-anchored one, see
tests/infra_checks/package_files.py): they must agree, and the package must
hold the function folders, shared/, host.json and requirements.txt and
nothing else: no tests, local host, sandbox, benchmark, infra or caches.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import zipfile
from functools import cache
from importlib import metadata
from pathlib import Path

import pytest
from infra_support import ROOT, run_script
from packaging.requirements import Requirement

RUNTIME_FILES = {"host.json", "requirements.txt"}


def function_folders() -> set[str]:
    return {path.parent.name for path in ROOT.glob("*/function.json")}


@cache
def package_files() -> dict[str, list[str]]:
    return run_script("package_files.py", str(ROOT))


def build_package(destination: Path) -> Path:
    """Zip the files exactly as listed for the deploying tools (one zip, paths from the root)."""
    archive = destination / "app.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as package:
        for name in package_files()["gitignore"]:
            package.write(ROOT / name, name)
    return archive


def test_core_tools_and_gitignore_matching_agree():
    listed = package_files()
    assert listed["gitignore"] == listed["core_tools"], (
        "`.funcignore` means different packages to azd and Core Tools: "
        f"{sorted(set(listed['gitignore']) ^ set(listed['core_tools']))}")


@pytest.mark.parametrize("matcher", ["gitignore", "core_tools"])
def test_package_holds_the_app_and_nothing_else(matcher):
    files = package_files()[matcher]
    top = {name.split("/", 1)[0] for name in files}
    expected = function_folders() | {"shared"} | RUNTIME_FILES
    assert {"make_call", "send_sms", "twiml"} <= function_folders()
    assert top == expected, (
        f"unexpected in the package: {sorted(top - expected)} (add them to .funcignore); "
        f"missing: {sorted(expected - top)}")
    for folder in function_folders():
        assert f"{folder}/function.json" in files and f"{folder}/__init__.py" in files
    assert not [f for f in files if "__pycache__" in f or f.endswith((".pyc", ".pyo"))]


def test_packaged_app_imports_alone(tmp_path):
    """Unzipped on its own (no repository beside it), every function imports."""
    app = tmp_path / "wwwroot"
    with zipfile.ZipFile(build_package(tmp_path)) as package:
        package.extractall(app)
    script = (
        "import importlib, json, sys\n"
        f"sys.path.insert(0, {str(app)!r})\n"
        f"for name in {sorted(function_folders())!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(n for n in sys.modules if n.split('.')[0] in "
        "('devhost', 'twilio_sandbox', 'localhttp', 'loadtest', 'tests', 'bench', "
        "'harness'))))\n"
    )
    # -I: no PYTHONPATH, no current directory: only the package and the installed libraries.
    result = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True,
                            cwd=tmp_path, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def _distributions_of(requirements: list[str]) -> set[str]:
    """The requirements and everything they depend on (installed metadata), normalised."""
    seen: set[str] = set()
    pending = [Requirement(line).name for line in requirements]
    while pending:
        name = pending.pop().lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        for dependency in metadata.requires(name) or []:
            requirement = Requirement(dependency)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return seen


def test_packaged_code_imports_only_what_requirements_txt_installs():
    """Azure installs requirements.txt and nothing else: a module from a dev
    dependency would import locally and fail on Azure."""
    text = (ROOT / "requirements.txt").read_text()
    lines = [line.split("#")[0].strip() for line in text.splitlines()]
    allowed = _distributions_of([line for line in lines if line])
    providers = metadata.packages_distributions()
    local = function_folders() | {"shared"}
    missing = set()
    for name in package_files()["gitignore"]:
        if not name.endswith(".py"):
            continue
        tree = ast.parse((ROOT / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top in sys.stdlib_module_names or top in local or top == "__future__":
                    continue
                owners = {d.lower().replace("_", "-") for d in providers.get(top, [])}
                if not owners & allowed:
                    missing.add((name, module))
    assert not missing, f"imported but not installed by requirements.txt: {sorted(missing)}"
