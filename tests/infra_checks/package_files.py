"""List the files a deployment package holds, as each deploying tool decides.

Run by the infrastructure tools' interpreter (it has pathspec). Prints
``{"gitignore": [...], "core_tools": [...]}``: the app's files (relative,
``/``-separated, sorted) that ``.funcignore`` leaves in, by

- ``gitignore``: .gitignore semantics (pathspec's ``gitwildmatch``), as
  ``azd`` and the documentation of ``.funcignore`` describe it;
- ``core_tools``: Azure Functions Core Tools' own matcher
  (``GitIgnoreParser``, a port of the codemix ``gitignore-parser``): each
  pattern becomes a regular expression anchored at the start of the path, so
  a pattern without ``**/`` matches only at the top level.

Both walk every file under the app's root, as ``func azure functionapp
publish`` and ``azd deploy`` zip the project folder.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

import pathspec


def all_files(root: Path) -> list[str]:
    found = []
    for folder, _dirs, files in os.walk(root):
        for name in files:
            found.append((Path(folder) / name).relative_to(root).as_posix())
    return sorted(found)


def _patterns(text: str) -> tuple[list[str], list[str]]:
    positive, negative = [], []
    for raw in text.split("\n"):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        target = negative if line.startswith("!") else positive
        line = line.removeprefix("!").removeprefix("/")
        target.append(line)
    return sorted(positive), sorted(negative)


def _core_tools_regex(patterns: list[str]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    parts = [re.escape(p).replace(r"\*\*", "(.+)").replace(r"\*", r"([^\/]+)") for p in patterns]
    return re.compile("^((" + ")|(".join(parts) + r"))\b")


def core_tools_denies(text: str) -> Callable[[str], bool]:
    positive, negative = (_core_tools_regex(p) for p in _patterns(text))

    def denies(path: str) -> bool:
        if negative and negative.match(path):
            return False
        return bool(positive and positive.match(path))

    return denies


def main(root: Path) -> None:
    text = (root / ".funcignore").read_text()
    files = all_files(root)
    spec = pathspec.PathSpec.from_lines("gitwildmatch", text.splitlines())
    denies = core_tools_denies(text)
    json.dump({
        "gitignore": [f for f in files if not spec.match_file(f)],
        "core_tools": [f for f in files if not denies(f)],
    }, sys.stdout)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
