"""One log line per request's outcome, safe to ship to Application Insights.

Lines carry the function, the status and Twilio's SID or error code. Phone
numbers are masked; secrets, keys and message bodies are never logged.
"""

from __future__ import annotations

import logging

logger = logging.getLogger("twilio_functions")


def log_outcome(
    function: str,
    status: int,
    *,
    sid: str | None = None,
    to: str | None = None,
    problem: str | None = None,
    twilio_code: int | None = None,
    cause: str | None = None,
) -> None:
    parts = [f"function={function}", f"status={status}"]
    if sid:
        parts.append(f"sid={sid}")
    if to:
        parts.append(f"to={mask(to)}")
    if problem:
        parts.append(f"problem={problem.rsplit(':', 1)[-1]}")
    if twilio_code:
        parts.append(f"twilio_code={twilio_code}")
    if cause:
        parts.append(f"cause={cause.replace(' ', '_')}")
    level = logging.ERROR if status >= 500 else logging.WARNING if status >= 400 else logging.INFO
    logger.log(level, " ".join(parts))


def mask(number: str) -> str:
    """Hide the middle of a number: ``+14155552671`` -> ``+1415•••2671``.

    Shorter numbers keep fewer digits, so at least half of them stay hidden.
    """
    if len(number) >= 12:
        return number[:5] + "•••" + number[-4:]
    if len(number) >= 8:
        return number[:3] + "•••" + number[-2:]
    return number[:2] + "•••"
