"""make_call: a mobile app asks for a call; Twilio places it and plays this app's TwiML."""

import azure.functions as func

from shared.calls import place_call, read_call
from shared.request_body import read_payload, require_method
from shared.responses import answers_problems, created
from shared.settings import app_settings

FUNCTION = "make_call"


@answers_problems(FUNCTION)
async def main(req: func.HttpRequest) -> func.HttpResponse:
    require_method(req, ("POST",))
    settings = app_settings()
    call = read_call(read_payload(req), settings, req.url)
    return created(FUNCTION, await place_call(call, settings))
