"""The README and docs/ hold to the tree: links, commands, options, and the README's shape.

Each check is a function over text (or a copy of the tree) that returns what is wrong,
so that beside the test on the real files a test on a broken copy shows it can fail.
What a test cannot hold (that a paragraph is true) the reader checks against the code.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path

import pytest
from harness import APP_URL, PROBLEM, invoke, request

ROOT = Path(__file__).resolve().parent.parent
README_MAX_LINES = 300
TOUR_WITHIN_LINES = 60

_FENCE = re.compile(r"^```.*?^```[^\n]*$", re.M | re.S)
_SPAN = re.compile(r"(`+)(.+?)\1", re.S)
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(([^()\s]+)(?:\s+\"[^\"]*\")?\)")
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$", re.M)
_HTML_ANCHOR = re.compile(r"<a\s+(?:id|name)=\"([^\"]+)\"", re.I)
_MAKE = re.compile(r"(?:^|[\s;&|(])make\s+([A-Za-z][\w-]*)(?![\w-]*=)")
_MODULE_COMMAND = re.compile(r"python(?:3(?:\.\d+)?)?\s+-m\s+([A-Za-z_][\w.]*)([^`\n;|&#]*)")
_FLAG = re.compile(r"(?<![\w-])--[a-z][\w-]*")
_MAKE_TARGET = re.compile(r"^([A-Za-z][\w.-]*)\s*:(?!=)", re.M)


def doc_files(root: Path = ROOT) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def prose(text: str) -> str:
    """The text without fenced blocks and code spans: where links are links."""
    return _SPAN.sub(" ", _FENCE.sub("", text))


def code(text: str) -> Iterator[str]:
    """Each line of a fenced block and each code span: where commands are written."""
    for block in _FENCE.findall(text):
        yield from block.splitlines()[1:-1]
    for match in _SPAN.finditer(_FENCE.sub("", text)):
        yield match.group(2)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its rendered text, lower case, punctuation dropped,
    spaces as hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").replace("*", "")
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every anchor a page has: its headings' slugs (repeats numbered as GitHub does), and
    HTML ids."""
    found: set[str] = set(_HTML_ANCHOR.findall(text))
    seen: dict[str, int] = {}
    for _, heading in _HEADING.findall(_FENCE.sub("", text)):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    """Relative links of ``path`` whose file, or whose anchor in it, does not exist."""
    broken = []
    for target in _LINK.findall(prose(path.read_text(encoding="utf-8"))):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):
            continue  # https:, mailto:: not the tree's
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists() or not linked.is_relative_to(root.resolve()):
            broken.append(f"{path.name}: {target} (no such file)")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(
                linked.read_text(encoding="utf-8")):
            broken.append(f"{path.name}: {target} (no such heading)")
    return broken


def make_targets(makefile: Path) -> set[str]:
    return set(_MAKE_TARGET.findall(makefile.read_text(encoding="utf-8")))


def unknown_make_targets(text: str, targets: set[str]) -> list[str]:
    named = {m for line in code(text) for m in _MAKE.findall(line)}
    return sorted(named - targets)


def module_commands(text: str) -> Iterator[tuple[str, str]]:
    """(module, the rest of its command line) for each ``python -m`` in code."""
    for line in code(text):
        for match in _MODULE_COMMAND.finditer(line):
            yield match.group(1), match.group(2)


def runnable(module: str, root: Path = ROOT) -> bool:
    """Whether ``python -m module`` runs: a project module's file, else an installed one."""
    if project_module(module, root):
        path = root.joinpath(*module.split("."))
        return path.with_suffix(".py").is_file() or (path / "__main__.py").is_file()
    return importlib.util.find_spec(module) is not None


def project_module(module: str, root: Path = ROOT) -> bool:
    return (root / module.split(".")[0]).is_dir()


@cache
def options(module: str) -> frozenset[str]:
    """The ``--options`` a project module's ``--help`` lists."""
    shown = subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT, text=True,
                           capture_output=True, timeout=120, check=True)
    return frozenset(_FLAG.findall(shown.stdout))


def unknown_options(text: str, options_of: Callable[[str], frozenset[str]]) -> list[str]:
    """Options written for a project module that its parser does not have.

    On a ``python -m X`` command line, every option is X's. A code span that is only an
    option (``--enforce-keys``, ``--port 0``) is held to the project modules run in the
    same paragraph, when there are any.
    """
    wrong = []
    for paragraph in re.split(r"\n\s*\n", _FENCE.sub(lambda m: m.group(0).replace(
            "\n\n", "\n"), text)):
        run = [(module, rest) for module, rest in module_commands(paragraph)
               if project_module(module)]
        for module, rest in run:
            wrong += [f"{module} {flag}" for flag in _FLAG.findall(rest)
                      if flag not in options_of(module)]
        modules = {module for module, _ in run}
        if not modules:
            continue
        for span in _SPAN.findall(paragraph):
            alone = re.fullmatch(r"(--[a-z][\w-]*)(?:[ =]\S+)?", span[1].strip())
            if alone and not any(alone.group(1) in options_of(m) for m in modules):
                wrong.append(f"{'/'.join(sorted(modules))} {alone.group(1)}")
    return wrong


def tour_line(readme: str) -> int | None:
    """The 1-based line of the README's local tour heading."""
    for number, line in enumerate(readme.splitlines(), 1):
        if re.match(r"#{2,3} .*\btour\b", line, re.I):
            return number
    return None


def readme_shape(readme: str) -> list[str]:
    """What a newcomer would miss: the tour on the first screen, the two commands, brevity."""
    wrong = []
    lines = readme.splitlines()
    if len(lines) > README_MAX_LINES:
        wrong.append(f"README has {len(lines)} lines (at most {README_MAX_LINES})")
    line = tour_line(readme)
    if line is None or line > TOUR_WITHIN_LINES:
        wrong.append(f"the local tour starts at line {line} (within {TOUR_WITHIN_LINES})")
    wrong += [f"README does not show `{c}`" for c in ("make run", "make test")
              if f"`{c}`" not in readme and f"\n{c} " not in readme]
    return wrong


# --- the real files --------------------------------------------------------------


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: p.name)
def test_every_relative_link_reaches_its_file_and_heading(path):
    assert broken_links(path) == []


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: p.name)
def test_every_make_target_named_exists(path):
    assert unknown_make_targets(path.read_text(), make_targets(ROOT / "Makefile")) == []


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: p.name)
def test_every_python_module_named_runs(path):
    assert [m for m, _ in module_commands(path.read_text()) if not runnable(m)] == []


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: p.name)
def test_every_option_shown_exists(path):
    assert unknown_options(path.read_text(), options) == []


def test_readme_is_short_with_the_tour_on_its_first_screen():
    assert readme_shape((ROOT / "README.md").read_text()) == []


def test_the_docs_show_devhost_options():
    """The option check reads something: the docs do run python -m devhost with options."""
    shown = {flag for path in doc_files() for module, rest in module_commands(path.read_text())
             if module == "devhost" for flag in _FLAG.findall(rest)}
    assert {"--port", "--auth", "--enforce-keys"} <= shown


# --- who may call what: said once, in docs/security.md, held to the code ---------------


def access_table(text: str) -> dict[str, list[str]]:
    """docs/security.md's access table: function -> its cells after the name."""
    rows = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        name = re.fullmatch(r"`(\w+)`", cells[0]) if len(cells) == 5 else None
        if name:
            rows[name.group(1)] = cells[1:]
    return rows


def observed_access(monkeypatch: pytest.MonkeyPatch) -> dict[str, dict[str, bool]]:
    """What each function takes, found by asking it: the key from its ``function.json``
    (Azure checks it, the function never sees it); the signed-in user and Twilio's
    signature by invoking it with neither, with ``REQUIRE_SIGNED_IN_USER=true`` and a
    ``VOICE_SINGLE_USER_IDENTITY``."""
    monkeypatch.setenv("REQUIRE_SIGNED_IN_USER", "true")
    monkeypatch.setenv("VOICE_SINGLE_USER_IDENTITY", "single_user")
    facts = {}
    for manifest in sorted(ROOT.glob("*/function.json")):
        trigger = json.loads(manifest.read_text())["bindings"][0]
        answer = None
        if trigger["type"] == "httpTrigger":
            route = trigger["route"].replace("{sid}", "SM" + "0" * 32).replace("/{number?}", "")
            answer = invoke(manifest.parent.name, request("POST", f"{APP_URL}/{route}", form={}))
            if answer.status_code == 405:
                answer = invoke(manifest.parent.name, request("GET", f"{APP_URL}/{route}"))
        kind = json.loads(answer.get_body()).get("type") if answer is not None else None
        facts[manifest.parent.name] = {
            "function key": answer is not None and trigger.get("authLevel") != "anonymous",
            "signed-in user": kind == f"{PROBLEM}sign-in-required",
            "Twilio signature": kind == f"{PROBLEM}invalid-signature",
        }
    return facts


def access_mismatches(text: str, facts: dict[str, dict[str, bool]]) -> list[str]:
    """Rows that say otherwise than the functions do (``yes`` where it applies, anything
    else where it does not), and functions without a row."""
    table = access_table(text)
    wrong = []
    for function, fact in facts.items():
        if function not in table:
            wrong.append(f"{function}: no row")
            continue
        _, *cells = table[function]
        for (what, applies), cell in zip(fact.items(), cells, strict=True):
            if cell.startswith("yes") != applies:
                wrong.append(f"{function}: {what} says {cell!r}")
    return wrong


def test_security_doc_says_who_may_call_what_as_the_functions_do(app_env, monkeypatch):
    facts = observed_access(monkeypatch)
    assert facts["make_call"] == {"function key": True, "signed-in user": True,
                                  "Twilio signature": False}  # the probe itself works
    assert facts["twiml"]["Twilio signature"] and not facts["twiml"]["function key"]
    text = (ROOT / "docs" / "security.md").read_text()
    assert access_mismatches(text, facts) == []

    changed = re.sub(r"^\| `status` \| ([^|]+) \| yes", r"| `status` | \1 | no", text,
                     flags=re.M)
    assert access_mismatches(changed, facts) == ["status: function key says 'no'"]
    dropped = "\n".join(line for line in text.splitlines() if not line.startswith("| `voice` |"))
    assert access_mismatches(dropped, facts) == ["voice: no row"]


# --- the sandbox's magic numbers, as docs/sandbox.md lists them -------------------------


def magic_rows_missing(text: str) -> list[str]:
    """Each magic number of the sandbox, and each number whose delivery fails, needs a row
    naming what it is (``SMS to``, ``call from``), the number, and its code or status."""
    from twilio_sandbox.magic import DELIVERY_OUTCOMES, MAGIC_NUMBERS

    label = {"message": "SMS", "call": "call"}
    wanted = [(f"{label[n.resource]} {n.param.lower()}", n.number, str(n.code))
              for n in MAGIC_NUMBERS if n.number is not None and n.code is not None]
    wanted += [(f"{label[o.resource]} to", o.number, str(o.code or o.status))
               for o in DELIVERY_OUTCOMES]
    rows = [line for line in text.splitlines() if line.startswith("|")]
    return [" ".join(w) for w in wanted if not any(all(part in row for part in w) for row in rows)]


def test_sandbox_doc_lists_every_magic_number():
    assert magic_rows_missing((ROOT / "docs" / "sandbox.md").read_text()) == []


# --- each check can fail -----------------------------------------------------------------


def new_since(before: list[str], after: list[str]) -> list[str]:
    """What a change broke (a copy's links to what was not copied stay broken)."""
    return [problem for problem in after if problem not in before]


@pytest.fixture
def tree(tmp_path) -> Path:
    """A copy of the docs, the Makefile and what they link to, to break."""
    for name in ("README.md", "Makefile"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    return tmp_path


def test_a_link_to_a_missing_file_is_found(tree):
    readme = tree / "README.md"
    before = broken_links(readme, tree)
    readme.write_text(readme.read_text() + "\nSee [gone](docs/gone.md).\n")
    assert new_since(before, broken_links(readme, tree)) == [
        "README.md: docs/gone.md (no such file)"]


def test_a_link_to_a_missing_heading_is_found(tree):
    page = tree / "docs" / "api.md"
    before = broken_links(page, tree)
    page.write_text(page.read_text() + "\n[x](security.md#no-such-heading) [y](#nor-here)\n")
    assert new_since(before, broken_links(page, tree)) == [
        "api.md: security.md#no-such-heading (no such heading)",
        "api.md: #nor-here (no such heading)"]


def test_a_link_out_of_the_tree_and_links_in_code_are_told_apart(tree):
    page = tree / "docs" / "api.md"
    page.write_text("[up](../../outside.md) `[not](a-link.md)`\n```\n[nor](this.md)\n```\n")
    assert broken_links(page, tree) == ["api.md: ../../outside.md (no such file)"]


@pytest.mark.parametrize(("heading", "anchor"), [
    ("`POST /api/make_call`", "post-apimake_call"),
    ("Safe retries: `Idempotency-Key`", "safe-retries-idempotency-key"),
    ("`GET|POST /api/twiml`", "getpost-apitwiml"),
    ("What it models, and what not", "what-it-models-and-what-not"),
    ("1. Provision and deploy: `azd up`", "1-provision-and-deploy-azd-up"),
])
def test_anchors_follow_githubs_slugs(heading, anchor):
    assert slug(heading) == anchor


def test_repeated_headings_are_numbered():
    assert {"rate-limits", "rate-limits-1"} <= anchors("## Rate limits\n\n### Rate limits\n")


def test_an_unknown_make_target_is_found():
    text = "Run `make run PORT=7072`, `make bench WRITE=1`, `make tset`; to make sense of it."
    assert unknown_make_targets(text, make_targets(ROOT / "Makefile")) == ["tset"]


def test_an_unknown_module_is_found():
    text = "`.venv/bin/python -m devhost.sign URL` and `python -m devhost.nothing --x`"
    assert [m for m, _ in module_commands(text) if not runnable(m)] == ["devhost.nothing"]


def test_an_unknown_option_is_found():
    def options_of(module: str) -> frozenset[str]:
        return frozenset({"--port", "--auth"}) if module == "devhost" else frozenset()

    text = ("Run `.venv/bin/python -m devhost --port 0 --nope`.\n\n"
            "With `python -m devhost`, add `--auth` or `--gone NAME`.\n\n"
            "Elsewhere, `--key-value` belongs to another tool.\n")
    assert unknown_options(text, options_of) == ["devhost --nope", "devhost --gone"]


def test_devhost_help_lists_its_options():
    assert {"--port", "--enforce-keys", "--auth", "--allow-host"} <= options("devhost")


def test_a_long_readme_or_a_late_tour_is_found():
    top = "# Title\n\n`make run` and `make test`\n\n## A five-minute tour\n"
    assert readme_shape(top + "line\n" * 10) == []
    assert readme_shape(top + "line\n" * README_MAX_LINES) == [
        f"README has {README_MAX_LINES + 5} lines (at most {README_MAX_LINES})"]
    late = "# Title\n`make run` `make test`\n" + "line\n" * 70 + "## The tour\n"
    assert readme_shape(late) == [f"the local tour starts at line 73 (within {TOUR_WITHIN_LINES})"]
    assert readme_shape("## Local tour\n`make run`\n") == ["README does not show `make test`"]


def test_a_missing_magic_number_row_is_found():
    text = (ROOT / "docs" / "sandbox.md").read_text()
    without = "\n".join(line for line in text.splitlines() if "+15005550009" not in line)
    assert magic_rows_missing(without) == ["SMS to +15005550009 21614"]
