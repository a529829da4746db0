"""What ``make test`` installs under .cache/ for the tests: there, and as the tree pins it.

Each install script stamps its install with the hash of its pin files; a
test recomputes the hash, so an install older than the pins fails loudly
instead of testing with the wrong tool.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache"


def pins_hash(folder: Path, names: Iterable[str]) -> str:
    """The hash an install script stamps its install with, recomputed from the tree."""
    return hashlib.sha256(b"".join((folder / name).read_bytes() for name in names)).hexdigest()


def require_install(install: Path, pins: Path, names: Iterable[str], needed: Iterable[Path],
                    command: str) -> None:
    """Fail, naming ``command``, when the install is missing or older than its pins."""
    stamp = install / ".installed"
    if not stamp.is_file() or not all(path.exists() for path in needed):
        pytest.fail(f"{install.relative_to(ROOT)} is not installed: run {command}")
    if stamp.read_text().strip() != pins_hash(pins, names):
        pytest.fail(f"{install.relative_to(ROOT)} is older than {pins.relative_to(ROOT)}/: "
                    f"run {command}")
