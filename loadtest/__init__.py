"""Load test of the live app against a faulty Twilio sandbox: ``python -m loadtest``.

Development only (like all of ``devhost``): it starts the app as ``make run``
does, on loopback, sends a bounded, seeded mix of requests while the sandbox
fails some Twilio requests, then checks that every answer, record and log
line is what it must be. It exits non-zero if any check fails.
"""

from loadtest.runner import Check, LoadConfig, LoadReport, run_load

__all__ = ["Check", "LoadConfig", "LoadReport", "run_load"]
