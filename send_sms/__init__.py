"""send_sms: a mobile app sends an SMS (or MMS) through Twilio."""

import azure.functions as func

from shared.deliveries import remember_sent, status_callback_url
from shared.identity import read_caller
from shared.limits import admit, caller_scope
from shared.messages import read_sms, send_message
from shared.request_body import read_payload, require_method
from shared.responses import answers_problems, created
from shared.settings import app_settings

FUNCTION = "send_sms"


@answers_problems(FUNCTION)
async def main(req: func.HttpRequest) -> func.HttpResponse:
    require_method(req, ("POST",))
    settings = app_settings()
    caller = read_caller(req, settings)
    payload = read_payload(req)
    sms = read_sms(payload, settings, status_callback_url(req.url, settings))
    await admit(settings, "sms", caller_scope(req, caller), sms.to)
    sent = await send_message(sms, settings)
    await remember_sent(settings, caller, "sms", sent)
    return created(FUNCTION, sent)
