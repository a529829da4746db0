"""make_call: a mobile app asks for a call; Twilio places it and plays this app's TwiML."""

import asyncio
from datetime import UTC, datetime

import azure.functions as func

from shared.calls import place_call, read_call
from shared.deliveries import record_placed, remember_sent, status_callback_url
from shared.idempotency import first_attempt, idempotency_key
from shared.identity import read_caller
from shared.limits import admit, caller_scope
from shared.request_body import read_payload, require_method
from shared.responses import answers_problems, created
from shared.settings import app_settings

FUNCTION = "make_call"


@answers_problems(FUNCTION)
async def main(req: func.HttpRequest) -> func.HttpResponse:
    require_method(req, ("POST",))
    settings = app_settings()
    caller = read_caller(req, settings)
    key = idempotency_key(req)
    payload = read_payload(req)
    call = read_call(payload, settings, req.url, status_callback_url(req.url, settings))
    async with first_attempt(settings, caller, key, FUNCTION, payload) as attempt:
        await admit(settings, "call", caller_scope(req, caller), call.to)
        placed = await place_call(call, settings)
        await asyncio.gather(  # both never raise: the call is placed
            remember_sent(settings, caller, "call", placed),
            record_placed(settings, caller.owner, placed, placed["from"], datetime.now(UTC)))
        return await attempt.keep(created(FUNCTION, placed))
