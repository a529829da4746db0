"""``make load`` fails when a check fails: the load runner against a deliberately broken app."""

from __future__ import annotations

import sys
from pathlib import Path

from live import ROOT, copy_app

from devhost import children

BROKEN_SEND_SMS = '''
import azure.functions as func


async def main(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("broken on purpose", status_code=500)
'''


def test_a_failing_check_makes_the_load_run_exit_non_zero(tmp_path: Path) -> None:
    app_dir = copy_app(tmp_path / "app")
    (app_dir / "send_sms" / "__init__.py").write_text(BROKEN_SEND_SMS, encoding="utf-8")
    result = children.run(
        [sys.executable, "-m", "loadtest", "--app-dir", str(app_dir),
         "--requests", "40", "--concurrency", "8", "--fault-rate", "0"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "RESULT: FAIL" in result.stdout
    failed = [line for line in result.stdout.splitlines() if "FAIL" in line]
    assert len(failed) >= 2, result.stdout  # the broken check itself, then the verdict
