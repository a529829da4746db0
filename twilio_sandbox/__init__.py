"""A local stand-in for Twilio's REST API, so the app can be run and tested offline.

It answers Twilio's Messages and Calls endpoints with Twilio's JSON, applies the
test-credential magic numbers, fetches each call's TwiML (signed) like Twilio, and
can be told to be slow or to fail. Nothing real is sent.

    async with TwilioSandbox(accounts={account_sid: auth_token}) as sandbox:
        ...  # point the Twilio client at sandbox.base_url

Standalone: ``python -m twilio_sandbox --account-sid AC... --auth-token ...``.
"""

from .faults import FAULT_KINDS, Fault
from .magic import MAGIC_NUMBERS, VALID_FROM, MagicNumber
from .sandbox import TwilioSandbox

# The line a process running the sandbox prints once it serves (then the URL).
READY_PREFIX = "twilio-sandbox listening on"

__all__ = [
    "FAULT_KINDS", "MAGIC_NUMBERS", "READY_PREFIX", "VALID_FROM", "Fault", "MagicNumber",
    "TwilioSandbox",
]
