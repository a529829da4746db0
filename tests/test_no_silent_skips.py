"""Nothing is skipped silently: a missing tool is named, each skip printed, and in CI it fails.

Two places decide: ``tests/contract/install.sh`` (run by ``make test``),
which installs node and npm with apt as root and otherwise says what will be
skipped; and ``no_skips_in_ci.py``, which makes a skipped test fail when
CI=true. Both run here in a subprocess, on a machine made to lack the tool.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from installs import ROOT

INSTALL = ROOT / "tests" / "contract" / "install.sh"
# What install.sh needs besides node, npm and apt-get, which the PATH below leaves out.
SHELL_TOOLS = ("sh", "cat", "cut", "dirname", "id", "sha256sum")
SKIPPING_TEST = '''
import pytest

def test_needs_a_tool():
    pytest.skip("frobnicator not found: install it")
'''
Run = Callable[[Path, dict[str, str]], subprocess.CompletedProcess[str]]


def install_without_node(folder: Path, ci: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """install.sh with a PATH holding neither node nor apt-get: it cannot install them."""
    tools = folder / "bin"
    tools.mkdir()
    for tool in SHELL_TOOLS:
        found = shutil.which(tool)
        assert found is not None, tool
        (tools / tool).symlink_to(found)
    return subprocess.run([tools / "sh", INSTALL], env={"PATH": str(tools), **ci},
                          capture_output=True, text=True, timeout=60, check=False)


def pytest_over_a_skip(folder: Path, ci: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """pytest with the project's options and the CI rule, over one test that skips."""
    (folder / "test_skipping.py").write_text(SKIPPING_TEST)
    env = {name: value for name, value in os.environ.items() if name != "CI"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no_skips_in_ci", "-p", "no:cacheprovider",
         "-c", ROOT / "pyproject.toml", "--rootdir", folder, folder / "test_skipping.py"],
        cwd=folder, env={**env, **ci, "PYTHONPATH": str(ROOT / "tests")},
        capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize(("run", "ci", "status", "said"), [
    (install_without_node, {}, 0, "node or npm not found: the Twilio contract tests will be "
                                  "SKIPPED"),
    (install_without_node, {"CI": "false"}, 0, "the Twilio contract tests will be SKIPPED"),
    (install_without_node, {"CI": "true"}, 1, "node or npm not found, and not root to install "
                                              "them with apt: CI must run the Twilio contract"),
    (pytest_over_a_skip, {}, 0, "SKIPPED [1] test_skipping.py:5: frobnicator not found"),
    (pytest_over_a_skip, {"CI": "false"}, 0, "SKIPPED [1] test_skipping.py:5: frobnicator"),
    (pytest_over_a_skip, {"CI": "true"}, 1, "skipped in CI, where every test must run: "
                                            "Skipped: frobnicator not found: install it"),
], ids=["install", "install-ci-false", "install-ci", "skip", "skip-ci-false", "skip-ci"])
def test_a_missing_tool_is_named_and_fails_only_in_ci(tmp_path: Path, run: Run,
                                                      ci: dict[str, str], status: int,
                                                      said: str) -> None:
    result = run(tmp_path, ci)
    printed = result.stdout + result.stderr
    assert result.returncode == status, printed
    assert said in " ".join(printed.split()), printed
