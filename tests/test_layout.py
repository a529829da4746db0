"""The tree's imports run one way, as the README's project layout draws it.

    app (function folders + shared/)   imports only shared/ and libraries
    localhttp/                         what the host and the sandbox share; imports nothing above
    twilio_sandbox/                    Twilio's double: neither devhost/ nor shared/
    push_sandbox/                      Notification Hubs' double: nor the Twilio sandbox either
    devhost/                           the Functions host; may start the sandbox
    bench/, loadtest/                  measurement: may use all of the above

Read from the source with ``ast`` (every import, those under ``if TYPE_CHECKING``
too), so a circle that only a type checker would follow still counts.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOOLING = ("devhost", "twilio_sandbox", "push_sandbox", "localhttp", "loadtest", "bench")
#: package -> the project's top-level packages it may import (besides itself).
ALLOWED: dict[str, set[str]] = {
    "app": {"shared"},
    "shared": set(),
    "localhttp": set(),
    "twilio_sandbox": {"localhttp"},
    "push_sandbox": {"localhttp"},
    "devhost": {"localhttp", "twilio_sandbox", "push_sandbox", "shared"},
    "loadtest": {"devhost", "twilio_sandbox", "push_sandbox", "localhttp", "shared"},
    "bench": {"devhost", "twilio_sandbox", "push_sandbox", "localhttp", "loadtest", "shared"},
}


def function_folders() -> list[str]:
    return sorted(p.parent.name for p in ROOT.glob("*/function.json"))


def project_packages() -> set[str]:
    return {"shared", *TOOLING, *function_folders()}


def modules() -> Iterator[tuple[str, Path]]:
    """(dotted name, path) of every project module outside tests."""
    for top in sorted(project_packages()):
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join(parts), path


def imports_of(name: str, path: Path, known: frozenset[str] = frozenset()) -> set[str]:
    """Every project module ``name`` imports, resolved to dotted names.

    ``from pkg import mod`` names ``pkg.mod`` alone when that is one of the ``known``
    modules; ``from mod import func`` names ``mod``.
    """
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.update(f"{module}.{alias.name}" if f"{module}.{alias.name}" in known
                         else module for alias in node.names)
    return {m for m in found if m.split(".")[0] in project_packages()}


def group(module: str) -> str:
    top = module.split(".")[0]
    return "app" if top in function_folders() else top


def graph() -> dict[str, set[str]]:
    known = dict(modules())
    edges: dict[str, set[str]] = {}
    for name, path in known.items():
        edges[name] = imports_of(name, path, frozenset(known)) & set(known)
        edges[name].discard(name)
    return edges


def test_each_package_imports_only_what_lies_below_it() -> None:
    wrong = sorted(
        f"{name} imports {target}"
        for name, targets in graph().items()
        for target in targets
        if group(target) != group(name) and group(target) not in ALLOWED[group(name)]
    )
    assert not wrong, wrong


def test_the_sandbox_knows_twilio_on_its_own() -> None:
    """Named apart from the rule above because it is the one that keeps tests honest."""
    borrowed = sorted(f"{name} imports {target}" for name, targets in graph().items()
                      if group(name) == "twilio_sandbox"
                      for target in targets if group(target) in ("shared", "devhost"))
    assert not borrowed, borrowed


def test_the_push_double_knows_notification_hubs_on_its_own() -> None:
    """Nor does it lean on the Twilio sandbox, which only serves it as a sub-application."""
    borrowed = sorted(f"{name} imports {target}" for name, targets in graph().items()
                      if group(name) == "push_sandbox"
                      for target in targets if group(target) in ("shared", "devhost",
                                                                  "twilio_sandbox"))
    assert not borrowed, borrowed
    assert any(group(name) == "push_sandbox" for name in graph())


def test_no_module_imports_itself_through_others() -> None:
    edges = graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    circles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(edges[node]):
            if state.get(target) == 1:
                circles.append([*path[path.index(target):], target])
            elif target not in state:
                visit(target, [*path, target])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert not circles, [" -> ".join(c) for c in circles]


def test_the_checker_sees_type_only_and_relative_imports(tmp_path: Path) -> None:
    """The rules above would pass vacuously if the reader missed these forms."""
    source = tmp_path / "state.py"
    source.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                      "    from .sandbox import TwilioSandbox\nfrom . import events\n")
    assert imports_of("twilio_sandbox.state", source, frozenset({"twilio_sandbox.events"})) == {
        "twilio_sandbox.sandbox", "twilio_sandbox.events"}
    source.write_text("from shared.logs import mask\nimport devhost.host\n")
    assert imports_of("twilio_sandbox.state", source) == {"shared.logs", "devhost.host"}
