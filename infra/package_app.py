"""Build the deployment package: the app's files, and its dependencies for Azure.

Flex Consumption runs the app on Linux x86-64 with CPython 3.13. Its remote
build for 3.13 has been reported building with 3.11 or failing
(https://github.com/Azure/azure-dev/issues/8538,
https://github.com/microsoft/Oryx/issues/2833) and is cut off after 60 s, so
the dependencies are installed here instead, as wheels for that platform, in
``.python_packages/lib/site-packages``, where the Python worker finds them
("Python build options", local build:
https://learn.microsoft.com/azure/azure-functions/python-build-options):

    pip install --platform manylinux2014_x86_64 --python-version 3.13 \\
        --only-binary=:all: --target .python_packages/lib/site-packages -r requirements.txt

The app's files are those ``.funcignore`` leaves in, as Azure Functions Core
Tools reads it (tests/test_deploy_package.py holds that azd's gitignore
reading agrees). Everything goes into a folder of its own, never the
project's: a ``.python_packages`` a developer built for their own machine
is left out by ``.funcignore`` and never deployed.

    python3 infra/package_app.py             # stage into .cache/package/app
    python3 infra/package_app.py --offline   # from the cached dependencies only

azd runs it before packaging (azure.yaml's prepackage hook) and deploys
``.cache/package/app`` as it is (``dist``, ``remoteBuild: false``); so does
the GitHub workflow. The dependencies are downloaded (PyPI) only when
requirements.txt changes: they are kept in ``.cache/package/deps-<hash>``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import venv
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLATFORM = "manylinux2014_x86_64"
PYTHON_VERSION = "3.13"
SITE_PACKAGES = Path(".python_packages") / "lib" / "site-packages"


def _patterns(text: str) -> tuple[list[str], list[str]]:
    positive, negative = [], []
    for raw in text.split("\n"):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        target = negative if line.startswith("!") else positive
        target.append(line.removeprefix("!").removeprefix("/"))
    return sorted(positive), sorted(negative)


def _core_tools_regex(patterns: list[str]) -> re.Pattern[str] | None:
    """Core Tools' matcher (``GitIgnoreParser``, a port of the codemix
    ``gitignore-parser``): each pattern a regular expression anchored at the
    start of the path, so a pattern without ``**/`` matches at the top only."""
    if not patterns:
        return None
    parts = [re.escape(p).replace(r"\*\*", "(.+)").replace(r"\*", r"([^\/]+)") for p in patterns]
    return re.compile("^((" + ")|(".join(parts) + r"))\b")


def funcignore_denies(text: str) -> Callable[[str], bool]:
    """Whether ``.funcignore`` (its text) leaves a ``/``-separated relative path out."""
    positive, negative = (_core_tools_regex(p) for p in _patterns(text))

    def denies(path: str) -> bool:
        if negative and negative.match(path):
            return False
        return bool(positive and positive.match(path))

    return denies


def app_files(root: Path) -> list[str]:
    """The files ``.funcignore`` leaves in, relative and ``/``-separated, sorted.

    A folder it leaves out is not walked (without ``!`` patterns nothing in it
    can come back), so .venv and .cache cost nothing.
    """
    text = (root / ".funcignore").read_text()
    denies = funcignore_denies(text)
    prune = not _patterns(text)[1]
    found = []
    for folder, dirs, files in os.walk(root):
        here = Path(folder).relative_to(root).as_posix()
        prefix = "" if here == "." else f"{here}/"
        if prune:
            dirs[:] = [d for d in dirs if not denies(prefix + d)]
        found += [prefix + name for name in files if not denies(prefix + name)]
    return sorted(found)


def dependencies_key(requirements: Path) -> str:
    """What names one set of built dependencies: requirements.txt and the target."""
    digest = hashlib.sha256(requirements.read_bytes())
    digest.update(f"{PLATFORM} {PYTHON_VERSION}".encode())
    return digest.hexdigest()[:16]


def ensure_dependencies(cache: Path, requirements: Path, *, offline: bool) -> Path:
    """The folder holding requirements.txt's wheels for Linux x86-64 CPython 3.13."""
    deps = cache / f"deps-{dependencies_key(requirements)}"
    if (deps / ".complete").exists():
        return deps
    if offline:
        raise SystemExit(f"{deps} is missing: run `make package` (or python3 infra/package_app.py)"
                         " once with access to PyPI; it is kept until requirements.txt changes")
    pip_env = cache / "pip"
    if not (pip_env / "bin" / "python").exists():  # pip of its own: no system pip needed
        venv.EnvBuilder(with_pip=True, clear=True).create(pip_env)
    building = cache / f"deps-{dependencies_key(requirements)}.building"
    shutil.rmtree(building, ignore_errors=True)
    subprocess.run(  # noqa: S603 - our own pip, with arguments fixed here
        [str(pip_env / "bin" / "python"), "-m", "pip", "install", "--quiet",
         "--disable-pip-version-check", "--no-input", "--no-compile",
         "--platform", PLATFORM, "--python-version", PYTHON_VERSION, "--implementation", "cp",
         "--only-binary=:all:", "--cache-dir", str(cache / "downloads"),
         "--target", str(building), "-r", str(requirements)],
        check=True)
    (building / ".complete").write_text("")
    for old in cache.glob("deps-*"):
        if old != building:
            shutil.rmtree(old, ignore_errors=True)
    building.rename(deps)
    return deps


def _link_or_copy(source: str, destination: str) -> None:
    try:
        os.link(source, destination)  # same disk: instant, and no space taken
    except OSError:
        shutil.copy2(source, destination)


def stage(root: Path, dest: Path, deps: Path) -> list[str]:
    """Put the app's files and the dependencies in ``dest`` (emptied first)."""
    shutil.rmtree(dest, ignore_errors=True)
    files = app_files(root)
    for name in files:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        _link_or_copy(str(root / name), str(dest / name))
    shutil.copytree(deps, dest / SITE_PACKAGES, copy_function=_link_or_copy,
                    ignore=shutil.ignore_patterns(".complete", "__pycache__"))
    return files


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", type=Path, default=ROOT / ".cache" / "package" / "app",
                        help="folder to stage the package in (emptied first)")
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache" / "package",
                        help="where the built dependencies are kept")
    parser.add_argument("--offline", action="store_true",
                        help="use the cached dependencies only; fail if there are none")
    args = parser.parse_args(argv)
    args.cache.mkdir(parents=True, exist_ok=True)
    deps = ensure_dependencies(args.cache, ROOT / "requirements.txt", offline=args.offline)
    files = stage(ROOT, args.dest, deps)
    dists = len(list(deps.glob("*.dist-info")))
    print(f"package: {len(files)} app files and {dists} distributions for "
          f"{PLATFORM} CPython {PYTHON_VERSION} in {args.dest}")


if __name__ == "__main__":
    main(sys.argv[1:])
