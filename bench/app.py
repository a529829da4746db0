"""Assembling the function app the benchmark serves, from the real code at run time.

The real function folders and ``shared/`` are copied, never rewritten, so the
figures are those of the code in the repository; the baselines come from
``bench/baselines``. No ``local.settings.json`` is copied: the host gets its
settings from the environment only.
"""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINES = Path(__file__).resolve().parent / "baselines"

APP_FUNCTIONS = ("send_sms", "make_call", "twiml")
# Served and measured for throughput, but no cold start: a callback for a SID the
# store does not know waits for it (shared.deliveries.UNKNOWN_GRACE).
WEBHOOK_FUNCTIONS = ("status_callback",)
BASELINE_FUNCTIONS = ("hello", "naive_send_sms")
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc")


def assemble(target: Path, functions: tuple[str, ...]) -> Path:
    """Write an app folder holding ``functions`` (app or baseline), ``shared/`` and host.json."""
    target.mkdir(parents=True)
    shutil.copy2(ROOT / "host.json", target / "host.json")
    shutil.copytree(ROOT / "shared", target / "shared", ignore=_IGNORED)
    for name in functions:
        source = BASELINES / name if name in BASELINE_FUNCTIONS else ROOT / name
        if not (source / "function.json").is_file():
            raise FileNotFoundError(f"no function folder for {name!r} at {source}")
        shutil.copytree(source, target / name, ignore=_IGNORED)
    return target
