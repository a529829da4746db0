"""Type-check Bicep resource bodies against Microsoft's Bicep type definitions.

The Bicep compiler checks every resource body against the type definitions
published in Azure/bicep-types-az; the compiler cannot run here (it downloads
from GitHub), so this does the same with the copies in ``types/``: every
property key must exist on its type (through nested objects, arrays and
discriminated objects), no read-only property may be set, a string literal
given to an enum must be one of its values, literals must have the type's
kind (string, integer, boolean, object, array) and bounds, and an object
written out in full must hold its required properties. Module calls are held
to the called file's parameters the same way.

Values Bicep computes at deployment (a parameter, a function call) are
checked as far as they are known: a variable's literal is followed, a
conditional's branches are each checked, each object ``union()`` merges is
checked without its required properties, and a parameter's ``@allowed``
values and default must suit an enum it is given to.

Run by the infrastructure tools' interpreter (it has pycep-parser, whose
``BicepElement`` tells an identifier from a string literal):
``python typecheck.py FILE.bicep...`` prints a JSON list of findings, each
``{"file", "resource", "path", "message", "line"}``.
"""

from __future__ import annotations

import difflib
import json
import re
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from pycep import BicepParser
from pycep.transformer import BicepElement

TYPES = Path(__file__).parent / "types"
REQUIRED, READ_ONLY = 1, 2
# Bicep's own keywords in a resource body, not properties of the resource type.
BICEP_KEYS = {"parent", "scope", "dependsOn", "depends_on"}
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Finding:
    file: str
    resource: str
    path: str
    message: str

    def line(self) -> str:
        where = f".{self.path}" if self.path and not self.path.startswith("[") else self.path
        return f"{self.file}: {self.resource}{where}: {self.message}"


@dataclass(frozen=True)
class Opaque:
    """A value known only by its kind (and a parameter's allowed values and default)."""

    kind: str  # string, int, bool, object, array
    allowed: tuple[Any, ...] = ()


UNKNOWN = object()  # a value nothing is known about: never a finding


@cache
def _types(provider: str, api_version: str) -> list[dict[str, Any]] | None:
    path = TYPES / provider.lower() / api_version / "types.json"
    return json.loads(path.read_text()) if path.exists() else None


class TypeSet:
    """One types.json: its entries, with refs resolved."""

    def __init__(self, entries: list[dict[str, Any]]) -> None:
        self.entries = entries

    def get(self, ref: dict[str, str]) -> dict[str, Any]:
        return self.entries[int(ref["$ref"].rsplit("/", 1)[1])]

    def resource_body(self, name: str, existing: bool) -> dict[str, Any] | None:
        matches = [e for e in self.entries
                   if e["$type"] == "ResourceType" and e["name"].lower() == name.lower()]
        writable = [e for e in matches if e.get("writableScopes", 1)]
        chosen = matches if existing else writable
        return self.get(chosen[0]["body"]) if chosen else None


def _is_expression(node: Any) -> bool:
    return (isinstance(node, dict) and len(node) == 1 and set(node) <= {"function", "operator"}
            and isinstance(next(iter(node.values())), dict) and "type" in next(iter(node.values())))


def _key(raw: str) -> str | None:
    """A property name as written (quotes removed); None when interpolated."""
    key = raw[1:-1] if len(raw) >= 2 and raw[0] == raw[-1] == "'" else raw
    return None if "${" in key else key


def _join(path: str, key: str) -> str:
    if _IDENTIFIER.fullmatch(key):
        return f"{path}.{key}" if path else key
    return f"{path}['{key}']"


# Functions whose result kind is known, for the kind check of computed values.
_STRING_FUNCTIONS = {
    "guid", "unique_string", "to_lower", "to_upper", "format", "replace", "substring",
    "trim", "string", "base64", "uri", "resource_id", "subscription_resource_id",
    "tenant_resource_id", "extension_resource_id", "take_string", "skip_string",
}
_BOOL_OPERATORS = {"not", "and", "or", "equals", "not_equals", "greater_than",
                   "greater_than_or_equals", "less_than", "less_than_or_equals"}


class Checker:
    """Findings for one Bicep file."""

    def __init__(self, path: Path, tree: dict[str, Any], display: str) -> None:
        self.path = path
        self.tree = tree
        self.display = display
        self.findings: list[Finding] = []

    # -- values -------------------------------------------------------------

    def candidates(self, node: Any, depth: int = 0) -> list[tuple[Any, bool]]:
        """What ``node`` may evaluate to: (literal or Opaque or UNKNOWN, written in full)."""
        if depth > 20:
            return [(UNKNOWN, True)]
        if isinstance(node, BicepElement):
            return self._identifier(str(node), depth)
        if isinstance(node, str):
            return [(Opaque("string") if "${" in node else node, True)]
        if not _is_expression(node):
            return [(node, True)]
        kind, inner = next(iter(node.items()))
        operation = inner["type"]
        operands = inner.get("operands" if kind == "operator" else "parameters") or {}
        if operation == "conditional":
            return (self.candidates(operands["true_value"], depth + 1)
                    + self.candidates(operands["false_value"], depth + 1))
        if operation in ("index_accessor", "property_accessor"):
            return self._accessor(operands, depth)
        if operation == "union":
            merged = [c for value in operands.values() if value is not None
                      for c in self.candidates(value, depth + 1)]
            return [(value, not isinstance(value, dict)) for value, _ in merged]
        if operation == "concat":
            parts = [c for value in operands.values() if value is not None
                     for c in self.candidates(value, depth + 1)]
            if parts and all(isinstance(v, list) or v == Opaque("array") for v, _ in parts):
                return parts
            return [(Opaque("string"), True)]
        if operation in _STRING_FUNCTIONS:
            return [(Opaque("string"), True)]
        if operation in _BOOL_OPERATORS or operation == "empty":
            return [(Opaque("bool"), True)]
        if operation == "split":
            return [(Opaque("array"), True)]
        return [(UNKNOWN, True)]

    def _identifier(self, name: str, depth: int) -> list[tuple[Any, bool]]:
        variables = self.tree.get("variables", {})
        if name in variables:
            return self.candidates(variables[name]["value"], depth + 1)
        parameter = self.tree.get("parameters", {}).get(name)
        if parameter is not None:
            return [(_parameter_value(parameter), True)]
        return [(UNKNOWN, True)]

    def _accessor(self, operands: dict[str, Any], depth: int) -> list[tuple[Any, bool]]:
        index = operands["operand_2"]
        found: list[tuple[Any, bool]] = []
        for target, _ in self.candidates(operands["operand_1"], depth + 1):
            if not isinstance(target, dict):
                return [(UNKNOWN, True)]
            if isinstance(index, str) and not isinstance(index, BicepElement):
                if index not in target:
                    return [(UNKNOWN, True)]
                found += self.candidates(target[index], depth + 1)
            else:  # computed index: any of the object's values
                found += [c for value in target.values()
                          for c in self.candidates(value, depth + 1)]
        return found or [(UNKNOWN, True)]

    # -- types --------------------------------------------------------------

    def check_resources(self) -> None:
        for symbol, resource in self.tree.get("resources", {}).items():
            type_name, api = resource["type"], resource["api_version"]
            label = f"resource {symbol.split('__')[-1]} ({type_name}@{api})"
            entries = _types(type_name.split("/", 1)[0], api)
            body_type = TypeSet(entries).resource_body(f"{type_name}@{api}", resource["existing"]) \
                if entries else None
            if body_type is None:
                self.findings.append(Finding(
                    self.display, label, "",
                    f"no type definitions for {type_name}@{api} in tests/infra_checks/types "
                    "(copy them from Azure/bicep-types-az, see its README)"))
                continue
            if resource["existing"]:
                continue
            body = {key: value for key, value in _unwrap(resource["config"]).items()
                    if key not in BICEP_KEYS}
            types = TypeSet(entries)
            for path, message in _problems(body, True, types, body_type, "", self):
                self.findings.append(Finding(self.display, label, path, message))

    def check_modules(self, parser: BicepParser) -> None:
        for symbol, module in self.tree.get("modules", {}).items():
            if module.get("type") != "local":
                continue
            target = (self.path.parent / module["detail"]["path"]).resolve()
            label = f"module {symbol} ({module['detail']['path']})"
            try:
                declared = parser.parse(file_path=target).get("parameters", {})
            except Exception as error:  # reported here; the file itself is checked on its own
                self.findings.append(Finding(self.display, label, "",
                                             f"cannot parse: {type(error).__name__}"))
                continue
            given = _unwrap(module["config"]).get("params", {})
            for name in sorted(set(given) - set(declared)):
                self.findings.append(Finding(
                    self.display, label, f"params.{name}",
                    f"not a parameter of {module['detail']['path']}{_suggest(name, declared)}"))
            for name, parameter in declared.items():
                if parameter["default"] is None and name not in given:
                    self.findings.append(Finding(self.display, label, f"params.{name}",
                                                 "required parameter not given"))
            for name in set(given) & set(declared):
                for value, _ in self.candidates(given[name]):
                    for message in _parameter_problems(value, declared[name]):
                        self.findings.append(Finding(self.display, label, f"params.{name}",
                                                     message))


def _unwrap(config: dict[str, Any]) -> dict[str, Any]:
    """The body of a resource or module declared with ``if (...)`` or ``[for ...]``."""
    wrapped = "config" in config and set(config) <= {"condition", "config", "loop_type"}
    return config["config"] if wrapped else config


def _parameter_value(parameter: dict[str, Any]) -> Opaque:
    kinds = {"string": "string", "int": "int", "bool": "bool", "object": "object",
             "array": "array"}
    allowed = next((tuple(d["argument"]) for d in parameter.get("decorators", [])
                    if d["type"] == "allowed"), ())
    default = parameter.get("default")
    if not allowed and isinstance(default, str) and not isinstance(default, BicepElement) \
            and "${" not in default:
        allowed = (default,)
    return Opaque(kinds.get(str(parameter.get("type")), "unknown"), allowed)


def _kind(value: Any) -> str:
    if isinstance(value, Opaque):
        return value.kind
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "null"


def _parameter_problems(value: Any, parameter: dict[str, Any]) -> list[str]:
    declared = _parameter_value(parameter)
    allowed = [a for a in declared.allowed] if any(
        d["type"] == "allowed" for d in parameter.get("decorators", [])) else []
    kind = _kind(value)
    if value is UNKNOWN or kind == "unknown" or declared.kind == "unknown":
        return []
    if kind != declared.kind:
        return [f"expects {declared.kind}, given {kind}"]
    values = list(value.allowed) if isinstance(value, Opaque) else [value]
    return [f"{v!r} is not one of its @allowed values {allowed}"
            for v in values if allowed and v not in allowed]


_TYPE_KIND = {"StringType": "string", "StringLiteralType": "string", "IntegerType": "int",
              "BooleanType": "bool", "ObjectType": "object", "DiscriminatedObjectType": "object",
              "ArrayType": "array"}


def _problems(value: Any, complete: bool, types: TypeSet, typ: dict[str, Any], path: str,
              checker: Checker) -> list[tuple[str, str]]:
    """(path, message) for each way ``value`` does not fit ``typ``."""
    kind = typ["$type"]
    if value is UNKNOWN or value is None or kind in ("AnyType", "ResourceFunctionType"):
        return []
    if kind == "UnionType":
        return _union_problems(value, complete, types, typ, path, checker)
    expected = _TYPE_KIND.get(kind)
    if _kind(value) != expected:
        if isinstance(value, Opaque) and value.kind == "unknown":
            return []
        return [(path, f"expects {_describe(types, typ)}, given {_describe_value(value)}")]
    if isinstance(value, Opaque):
        return _opaque_problems(value, types, typ, path)
    if kind == "StringLiteralType" and value != typ["value"]:
        return [(path, f"{value!r} is not {typ['value']!r}")]
    if kind == "StringType":
        return _string_problems(value, typ, path)
    if kind == "IntegerType":
        low, high = typ.get("minValue"), typ.get("maxValue")
        if (low is not None and value < low) or (high is not None and value > high):
            return [(path, f"{value} is outside {low}..{high}")]
        return []
    if kind == "ArrayType":
        return [p for i, item in enumerate(value)
                for candidate, whole in checker.candidates(item)
                for p in _problems(candidate, whole, types, types.get(typ["itemType"]),
                                   f"{path}[{i}]", checker)]
    if kind == "DiscriminatedObjectType":
        return _discriminated_problems(value, complete, types, typ, path, checker)
    if kind == "ObjectType":
        return _object_problems(value, complete, types, typ.get("properties", {}),
                                typ.get("additionalProperties"), path, checker)
    return []


def _opaque_problems(value: Opaque, types: TypeSet, typ: dict[str, Any], path: str,
                     ) -> list[tuple[str, str]]:
    """A parameter's allowed values (or default) must each fit an enum it is given to."""
    if typ["$type"] != "StringLiteralType":
        return []
    return [(path, f"may be {v!r} (a parameter's allowed value or default), "
                   f"not {typ['value']!r}") for v in value.allowed if v != typ["value"]]


def _string_problems(value: str, typ: dict[str, Any], path: str) -> list[tuple[str, str]]:
    problems = []
    low, high = typ.get("minLength"), typ.get("maxLength")
    if (low is not None and len(value) < low) or (high is not None and len(value) > high):
        problems.append((path, f"{value!r} is not {low}..{high} characters long"))
    pattern = typ.get("pattern")
    if pattern:
        try:
            if not re.search(pattern, value):
                problems.append((path, f"{value!r} does not match {pattern!r}"))
        except re.error:  # a .NET construct Python lacks: not checked
            pass
    return problems


def _union_problems(value: Any, complete: bool, types: TypeSet, typ: dict[str, Any], path: str,
                    checker: Checker) -> list[tuple[str, str]]:
    elements = [types.get(ref) for ref in typ["elements"]]
    literals = [e["value"] for e in elements if e["$type"] == "StringLiteralType"]
    # An open enum (its values and any string) takes what Azure may add later;
    # only a near miss of a known value is surely a mistake there.
    open_enum = literals and any(e["$type"] == "StringType" for e in elements)
    if isinstance(value, str) or (isinstance(value, Opaque) and value.kind == "string"):
        strings = list(value.allowed) if isinstance(value, Opaque) else [value]
        origin = " (a parameter's allowed value or default)" if isinstance(value, Opaque) else ""
        if literals and (open_enum or len(literals) == len(elements)):
            return [(path, f"{v!r}{origin} is not one of {_enum(literals)}{_suggest(v, literals)}")
                    for v in strings if v not in literals
                    and (not open_enum or _suggest(v, literals))]
    if isinstance(value, Opaque):
        return [] if value.kind in {_TYPE_KIND.get(e["$type"]) for e in elements} else [
            (path, f"expects {_describe(types, typ)}, given {_describe_value(value)}")]
    results = [_problems(value, complete, types, e, path, checker) for e in elements]
    if any(not r for r in results):
        return []
    same_kind = [r for r, e in zip(results, elements, strict=True)
                 if _TYPE_KIND.get(e["$type"]) == _kind(value)]
    return min(same_kind, key=len) if same_kind else [
        (path, f"expects {_describe(types, typ)}, given {_describe_value(value)}")]


def _discriminated_problems(value: dict[str, Any], complete: bool, types: TypeSet,
                            typ: dict[str, Any], path: str, checker: Checker,
                            ) -> list[tuple[str, str]]:
    discriminator = typ["discriminator"]
    raw = {_key(k): v for k, v in value.items()}.get(discriminator)
    chosen = [c for c, _ in checker.candidates(raw)] if raw is not None else []
    names = sorted(typ["elements"])
    if not chosen and complete:
        return [(_join(path, discriminator), f"missing; one of {_enum(names)}")]
    problems: list[tuple[str, str]] = []
    for choice in chosen or [UNKNOWN]:
        base = dict(typ.get("baseProperties", {}))
        if isinstance(choice, str) and not isinstance(choice, Opaque):
            if choice not in typ["elements"]:
                problems.append((_join(path, discriminator),
                                 f"{choice!r} is not one of {_enum(names)}"
                                 f"{_suggest(choice, names)}"))
                continue
            element = types.get(typ["elements"][choice])
            problems += _object_problems(value, complete, types,
                                         {**base, **element.get("properties", {})},
                                         element.get("additionalProperties"), path, checker)
        else:  # not known before deployment: only what no variant has is wrong
            known = set(base)
            for ref in typ["elements"].values():
                known |= set(types.get(ref).get("properties", {}))
            for raw_key in value:
                key = _key(raw_key)
                if key is not None and key not in known:
                    problems.append((_join(path, key), "is a property of no variant"))
    return problems


def _object_problems(value: dict[str, Any], complete: bool, types: TypeSet,
                     properties: dict[str, Any], additional: dict[str, str] | None, path: str,
                     checker: Checker) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    given = set()
    for raw_key, item in value.items():
        key = _key(raw_key)
        if key is None:  # an interpolated name: only additionalProperties can take it
            if additional:
                problems += _checked(item, types, additional, f"{path}[{raw_key}]", checker)
            continue
        given.add(key)
        where = _join(path, key)
        declared = properties.get(key)
        if declared is None:
            if additional:
                problems += _checked(item, types, additional, where, checker)
            else:
                problems.append((where, f"unknown property{_suggest(key, properties)}"))
            continue
        if declared["flags"] & READ_ONLY and not declared["flags"] & REQUIRED:
            problems.append((where, "is read-only: Azure sets it, a deployment may not"))
            continue
        problems += _checked(item, types, declared["type"], where, checker)
    if complete:
        for name, declared in properties.items():
            flags = declared["flags"]
            if flags & REQUIRED and not flags & READ_ONLY and name not in given:
                problems.append((_join(path, name), "required property missing"))
    return problems


def _checked(node: Any, types: TypeSet, type_ref: dict[str, str], path: str,
             checker: Checker) -> list[tuple[str, str]]:
    return [p for value, whole in checker.candidates(node)
            for p in _problems(value, whole, types, types.get(type_ref), path, checker)]


def _suggest(word: str, choices: Any) -> str:
    choices = list(choices)
    folded = [c for c in choices if c.lower() == word.lower()]
    close = folded or difflib.get_close_matches(word, choices, n=1, cutoff=0.75)
    return f"; did you mean {close[0]!r}?" if close else ""


def _enum(values: list[str]) -> str:
    return ", ".join(repr(v) for v in sorted(values))


def _describe(types: TypeSet, typ: dict[str, Any]) -> str:
    kind = typ["$type"]
    if kind == "StringLiteralType":
        return repr(typ["value"])
    if kind == "UnionType":
        return " | ".join(_describe(types, types.get(e)) for e in typ["elements"])
    return _TYPE_KIND.get(kind, kind)


def _describe_value(value: Any) -> str:
    if isinstance(value, Opaque):
        return f"a computed {value.kind}"
    return f"{_kind(value)} {json.dumps(value)[:60]}"


def check_files(paths: list[Path], root: Path) -> list[Finding]:
    parser = BicepParser()
    findings: list[Finding] = []
    for path in paths:
        try:
            display = str(path.resolve().relative_to(root.resolve()))
        except ValueError:
            display = str(path)
        try:
            tree = parser.parse(file_path=path)
        except Exception as error:  # lark's errors: the file is reported, the others checked
            findings.append(Finding(display, "file", "", f"cannot parse: {type(error).__name__}"))
            continue
        checker = Checker(path, tree, display)
        checker.check_resources()
        checker.check_modules(parser)
        findings += checker.findings
    return findings


def main(argv: list[str]) -> None:
    findings = check_files([Path(p) for p in argv], Path.cwd())
    json.dump([{"file": f.file, "resource": f.resource, "path": f.path, "message": f.message,
                "line": f.line()} for f in findings], sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1:])
