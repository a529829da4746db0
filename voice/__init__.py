"""voice: the TwiML App's Voice URL. Twilio asks it whom a call placed in the mobile app,
or a call from a phone to the Twilio number, should reach.

No function key (Twilio has none to send): ``read_webhook`` admits only
requests Twilio signed for this account. Never imports ``twilio.rest``: Twilio
waits on this answer while the caller listens to silence.
"""

import azure.functions as func

from shared.request_body import require_method
from shared.responses import answers_problems, twiml
from shared.settings import app_settings
from shared.voice_calls import CallRefused, connect, read_voice_call
from shared.webhook import read_webhook

FUNCTION = "voice"


@answers_problems(FUNCTION)
async def main(req: func.HttpRequest) -> func.HttpResponse:
    require_method(req, ("POST",))
    settings = app_settings()
    call = read_voice_call(read_webhook(req, settings))
    try:
        document = await connect(call, settings, req.url)
    except CallRefused as refused:  # told to the caller aloud, and logged
        refused.log(FUNCTION, call)
        document = refused.document()
    return twiml(FUNCTION, document)
