"""One log line per request's outcome, safe to ship to Application Insights.

Lines carry the function, the status and Twilio's SID or error code. Phone
numbers are masked; secrets, keys and message bodies are never logged.
"""

from __future__ import annotations

import logging
import re

from phonenumbers import COUNTRY_CODE_TO_REGION_CODE

logger = logging.getLogger("twilio_functions")
HIDDEN = "•" * 7
_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,31}(\[[0-9]{1,3}\])?")


def log_outcome(
    function: str,
    status: int,
    *,
    sid: str | None = None,
    to: str | None = None,
    problem: str | None = None,
    field: str | None = None,
    twilio_code: int | None = None,
    cause: str | None = None,
    outcome: str | None = None,
) -> None:
    """Log the request's outcome: INFO for success, WARNING for 4xx, ERROR for 5xx.

    ``field`` is the refused request field, shown only when its name is a
    plain identifier (a client's unknown field name could carry anything);
    ``cause`` says why (the policy's rule, or the upstream failure), never a
    number or message text.
    """
    parts = [f"function={function}", f"status={status}"]
    if sid:
        parts.append(f"sid={sid}")
    if outcome:
        parts.append(f"outcome={outcome}")
    if to:
        parts.append(f"to={mask(to)}")
    if problem:
        parts.append(f"problem={problem.rsplit(':', 1)[-1]}")
    if field:
        parts.append(f"field={field if _PLAIN_NAME.fullmatch(field) else '(hidden)'}")
    if twilio_code:
        parts.append(f"twilio_code={twilio_code}")
    if cause:
        parts.append(f"cause={cause.replace(' ', '_')}")
    level = logging.ERROR if status >= 500 else logging.WARNING if status >= 400 else logging.INFO
    logger.log(level, " ".join(parts))


def mask(number: str) -> str:
    """At most the country code and the last 4 digits: ``+14155552671`` -> ``+1•••••••2671``.

    A fixed run of dots hides the number's length too; a short national
    number keeps at most half its digits; what is not a ``+`` and digits with
    a known country code keeps nothing.
    """
    digits = number[1:]
    if not number.startswith("+") or not (digits.isascii() and digits.isdecimal()):
        return HIDDEN
    # Country codes are prefix-free: libphonenumber extracts them the same way.
    country = next((digits[:n] for n in (1, 2, 3)
                    if len(digits) > n and int(digits[:n]) in COUNTRY_CODE_TO_REGION_CODE), None)
    if country is None:
        return HIDDEN
    national = digits[len(country):]
    kept = min(4, len(national) // 2)
    return f"+{country}{HIDDEN}{national[len(national) - kept:]}"
