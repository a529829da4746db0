"""How the sandbox shows a phone number in its log lines and on the console.

Numbers are personal data even on a developer's machine (logs get pasted into
issues): the country code and the last four digits are enough to tell test
numbers apart. The app masks its own log lines by its own rule; this is the
sandbox's, so that it depends on nothing of the app's.
"""

import phonenumbers

HIDDEN = "•" * 7


def mask(number: str) -> str:
    """``+14155552671`` -> ``+1•••••••2671``; anything not a number -> dots only."""
    try:
        parsed = phonenumbers.parse(number)
    except phonenumbers.NumberParseException:
        return HIDDEN
    national = str(parsed.national_number)
    kept = min(4, len(national) // 2)
    return f"+{parsed.country_code}{HIDDEN}{national[len(national) - kept:]}"
