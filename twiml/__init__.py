"""twiml: Twilio fetches what to do with a call (or an incoming SMS) from here.

Anonymous on purpose, since Twilio cannot send a function key: Twilio's
request signature is what authenticates the request. Imports no
``twilio.rest``, to keep cold starts short.
"""

import azure.functions as func

from shared.request_body import require_method
from shared.responses import answers_problems, twiml
from shared.settings import app_settings
from shared.twiml import is_incoming_sms, reply_document, voice_document
from shared.webhook import read_webhook

FUNCTION = "twiml"


@answers_problems(FUNCTION)
async def main(req: func.HttpRequest) -> func.HttpResponse:
    require_method(req, ("GET", "POST"))
    settings = app_settings()
    params = read_webhook(req, settings)
    if is_incoming_sms(params):
        return twiml(FUNCTION, reply_document(settings.sms_reply_message))
    return twiml(FUNCTION, voice_document(req.params))
