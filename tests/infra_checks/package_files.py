"""List the files a deployment package holds, as each deploying tool decides.

Run by the infrastructure tools' interpreter (it has pathspec). Prints
``{"gitignore": [...], "core_tools": [...]}``: the app's files (relative,
``/``-separated, sorted) that ``.funcignore`` leaves in, by

- ``gitignore``: .gitignore semantics (pathspec's ``gitwildmatch``), as
  ``azd`` and the documentation of ``.funcignore`` describe it;
- ``core_tools``: Azure Functions Core Tools' own matcher, as
  infra/package_app.py applies it when it stages the package.

Both walk every file under the app's root, as ``func azure functionapp
publish`` and ``azd deploy`` zip the project folder.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pathspec

# infra/ is not a package: its stager is imported from its folder.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "infra"))
from package_app import funcignore_denies


def all_files(root: Path) -> list[str]:
    found = []
    for folder, _dirs, files in os.walk(root):
        for name in files:
            found.append((Path(folder) / name).relative_to(root).as_posix())
    return sorted(found)


def main(root: Path) -> None:
    text = (root / ".funcignore").read_text()
    files = all_files(root)
    spec = pathspec.PathSpec.from_lines("gitwildmatch", text.splitlines())
    denies = funcignore_denies(text)
    json.dump({
        "gitignore": [f for f in files if not spec.match_file(f)],
        "core_tools": [f for f in files if not denies(f)],
    }, sys.stdout)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
