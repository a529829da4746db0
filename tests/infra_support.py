"""The offline infrastructure checks' tools, installed by `make infra-tools`.

checkov, pycep-parser, check-jsonschema and pathspec live in a virtual
environment of their own (.cache/infra-tools): the tests run them as
programs, never import them into the project's interpreter.
"""

from __future__ import annotations

import json
import re
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


@cache
def typed_trees() -> dict[str, Any]:
    """As ``bicep_trees``, with each identifier written ``{"identifier": name}``."""
    parsed = run_script("bicep_to_json.py", "--typed",
                        *(str(p.relative_to(ROOT)) for p in bicep_files()))
    assert not parsed["errors"], f"pycep-parser cannot parse: {parsed['errors']}"
    return parsed["trees"]


class Unevaluated(Exception):
    """An expression ``evaluate`` does not know: only deployment can compute it."""


_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def evaluate(node: Any, tree: dict[str, Any], params: dict[str, Any]) -> Any:
    """What a Bicep value comes to, given its file's parameters: the few
    functions and operators infra/ computes its configuration with."""
    def value(n: Any) -> Any:
        return evaluate(n, tree, params)

    if isinstance(node, str):
        if "${" not in node:
            return node
        # An identifier is replaced by its value; any other ${...} (a function
        # only Azure can call, as environment()) stays as written.
        return _INTERPOLATION.sub(lambda m: str(value({"identifier": m[1]})), node)
    if isinstance(node, list):
        return [value(item) for item in node]
    if not isinstance(node, dict):
        return node
    if set(node) == {"identifier"}:
        name = node["identifier"]
        if name in params:
            return params[name]
        if name in tree.get("variables", {}):
            return value(tree["variables"][name]["value"])
        declared = tree.get("parameters", {}).get(name)
        if declared is not None and declared["default"] is not None:
            return value(declared["default"])
        raise Unevaluated(name)
    if set(node) in ({"function"}, {"operator"}) and "type" in next(iter(node.values())):
        inner = next(iter(node.values()))
        args = list((inner.get("parameters") or inner.get("operands") or {}).values())
        kind = inner["type"]
        if kind == "conditional":
            return value(args[1]) if value(args[0]) else value(args[2])
        if kind == "property_accessor":  # `a.b`: b is a name, not a value
            key = args[1]["identifier"] if isinstance(args[1], dict) and set(args[1]) == {
                "identifier"} else args[1]
            return value(args[0])[key if isinstance(key, str) else value(key)]
        if kind == "index_accessor":
            key = args[1] if isinstance(args[1], str) else value(args[1])
            return value(args[0])[key]
        evaluated = [value(a) for a in args if a is not None]
        simple = {
            "not": lambda a: not a,
            "and": lambda a, b: a and b,
            "or": lambda a, b: a or b,
            "empty": lambda a: not a,
            "equals": lambda a, b: a == b,
            "concat": lambda *a: ([x for part in a for x in part] if isinstance(a[0], list)
                                  else "".join(a)),
            "split": lambda a, b: a.split(b),
            "replace": lambda a, b, c: a.replace(b, c),
            "union": lambda *a: ({k: v for d in a for k, v in d.items()}
                                 if isinstance(a[0], dict)
                                 else list(dict.fromkeys(x for part in a for x in part))),
        }
        if kind in simple:
            return simple[kind](*evaluated)
        raise Unevaluated(kind)
    return {_unquoted(key): value(item) for key, item in node.items()}


def _unquoted(key: str) -> str:
    return key[1:-1] if len(key) >= 2 and key[0] == key[-1] == "'" else key


def _is_expression(node: Any) -> bool:
    return isinstance(node, dict) and set(node) in ({"function"}, {"operator"})


def object_literals(node: Any) -> list[dict[str, Any]]:
    """The object literals an expression may evaluate to (through union, ?:)."""
    if _is_expression(node):
        inner = node.get("function", node.get("operator"))
        children = inner.get("parameters", inner.get("operands", {}))
        return [o for child in children.values() for o in object_literals(child)]
    return [node] if isinstance(node, dict) else []


def resource_body(resource: dict[str, Any]) -> dict[str, Any]:
    """A resource's body, also when declared with ``if (...)`` or ``[for ...]``."""
    config = resource["config"]
    wrapped = "config" in config and set(config) <= {"condition", "config", "loop_type"}
    return config["config"] if wrapped else config


def app_settings() -> dict[str, Any]:
    """Every app setting infra/ provisions, with pycep's tree of its value: the
    appsettings resources' objects and any site's siteConfig.appSettings list."""
    found: dict[str, Any] = {}
    for tree in bicep_trees().values():
        for resource in tree.get("resources", {}).values():
            config = resource_body(resource)
            if resource["type"] == "Microsoft.Web/sites/config" and config["name"] == "appsettings":
                for literal in object_literals(config["properties"]):
                    found.update(literal)
            if resource["type"] == "Microsoft.Web/sites":
                site_config = config.get("properties", {}).get("siteConfig", {})
                for entry in site_config.get("appSettings", []) if isinstance(
                        site_config, dict) else []:
                    found[entry["name"]] = entry.get("value")
    assert found, "no app settings found in infra/"
    return found
