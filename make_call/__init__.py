"""make_call: a mobile app asks for a call; Twilio places it and plays this app's TwiML."""

from datetime import UTC, datetime

import azure.functions as func

from shared.calls import place_call, read_call
from shared.deliveries import note_sent, remember_sent, status_callback_url
from shared.idempotency import first_attempt, idempotency_key
from shared.identity import read_caller
from shared.limits import admit, caller_scope
from shared.request_body import read_payload, require_method
from shared.responses import answers_problems, created
from shared.settings import app_settings
from shared.started import started

FUNCTION = "make_call"


@answers_problems(FUNCTION)
async def main(req: func.HttpRequest) -> func.HttpResponse:
    require_method(req, ("POST",))
    settings = app_settings()
    caller = read_caller(req, settings)
    key = idempotency_key(req)
    payload = read_payload(req)
    call = read_call(payload, settings, req.url,
                     status_callback_url(req.url, settings, caller.owner))
    async with first_attempt(settings, caller, key, FUNCTION, payload) as attempt:
        await admit(settings, "call", caller_scope(req, caller), call.to)
        noted = started(note_sent(settings, caller.owner, call.from_, call.to,
                                  datetime.now(UTC)))
        try:
            placed = await place_call(call, settings)  # while the caller is noted
        finally:
            await noted  # never raises
        await remember_sent(settings, caller, "call", placed)  # one transaction; never raises
        return await attempt.keep(created(FUNCTION, placed))
