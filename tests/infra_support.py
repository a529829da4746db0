"""The offline infrastructure checks' tools, installed by `make infra-tools`.

checkov, pycep-parser, check-jsonschema and pathspec live in a virtual
environment of their own (.cache/infra-tools): the tests run them as
programs, never import them into the project's interpreter.
"""

from __future__ import annotations

import json
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parents[1]
TOOLS = ROOT / ".cache" / "infra-tools" / "bin"
SCRIPTS = ROOT / "tests" / "infra_checks"
INFRA = ROOT / "infra"


def tool(name: str) -> str:
    """Path of one installed tool; a loud failure (never a skip) when missing."""
    path = TOOLS / name
    if not path.exists():
        raise AssertionError(
            f"{path} is missing: run `make infra-tools` (`make test` does it), "
            "which installs tests/infra_checks/requirements.txt into .cache/infra-tools"
        )
    return str(path)


def run_tool(name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool(name), *args], capture_output=True, text=True, check=check,
                          cwd=ROOT, timeout=300)


def run_script(script: str, *args: str) -> Any:
    """Run one of tests/infra_checks/ with the tools' interpreter; its JSON output."""
    result = run_tool("python", str(SCRIPTS / script), *args)
    return json.loads(result.stdout)


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


@cache
def bicep_trees() -> dict[str, Any]:
    """pycep's syntax tree of every Bicep file, by path relative to the root."""
    parsed = run_script("bicep_to_json.py", *(str(p.relative_to(ROOT)) for p in bicep_files()))
    assert not parsed["errors"], f"pycep-parser cannot parse: {parsed['errors']}"
    return parsed["trees"]


def resources(type_name: str) -> list[tuple[str, dict[str, Any]]]:
    """Every resource of one type across the Bicep files, as (path, config)."""
    return [
        (path, resource["config"])
        for path, tree in bicep_trees().items()
        for resource in tree.get("resources", {}).values()
        if resource["type"] == type_name
    ]
