"""``make bench`` prints its figures; it rewrites docs/performance.md only when asked."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from live import ROOT

from bench import __main__ as bench_main
from bench import report
from bench.figures import Row

ROWS = [Row("added latency, send_sms", "1.20 ms", "1.00 ms", 1.2, "<= 1.5x", True)]


def test_make_bench_passes_write_only_when_asked() -> None:
    def dry_run(*args: str) -> str:
        printed = subprocess.run(["make", "--no-print-directory", "-n", "bench", *args], cwd=ROOT,
                                 capture_output=True, text=True, check=True).stdout
        [command] = [line for line in printed.splitlines() if " -m bench" in line]
        return command.strip()

    assert dry_run().endswith("-m bench")
    assert dry_run("WRITE=1").endswith("-m bench --write")


def test_the_document_is_written_only_with_write(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    doc = tmp_path / "docs" / "performance.md"
    monkeypatch.setattr(report, "ROOT", tmp_path)
    monkeypatch.setattr(report, "DOC", doc)
    said = bench_main.finish(ROWS, 12.0, "", write=False)
    assert not doc.exists()
    assert "left as it is" in said
    said = bench_main.finish(ROWS, 12.0, "", write=True)
    assert "added latency, send_sms" in doc.read_text()
    assert said.endswith("wrote docs/performance.md")
