"""send_sms: a mobile app sends an SMS (or MMS) through Twilio."""

import asyncio
from datetime import UTC, datetime

import azure.functions as func

from shared.conversations import record_outgoing
from shared.deliveries import remember_sent, status_callback_url
from shared.idempotency import first_attempt, idempotency_key
from shared.identity import read_caller
from shared.limits import admit, caller_scope
from shared.messages import read_sms, send_message
from shared.opt_outs import learning_opt_outs, refuse_opted_out
from shared.request_body import read_payload, require_method
from shared.responses import answers_problems, created
from shared.settings import app_settings

FUNCTION = "send_sms"


@answers_problems(FUNCTION)
async def main(req: func.HttpRequest) -> func.HttpResponse:
    require_method(req, ("POST",))
    settings = app_settings()
    now = datetime.now(UTC)
    caller = read_caller(req, settings)
    key = idempotency_key(req)
    payload = read_payload(req)
    sms = read_sms(payload, settings, status_callback_url(req.url, settings))
    await refuse_opted_out(settings, sms.line, sms.to)
    async with first_attempt(settings, caller, key, FUNCTION, payload) as attempt:
        await admit(settings, "sms", caller_scope(req, caller), sms.to)
        async with learning_opt_outs(settings, sms.line, sms.to, now):
            sent = await send_message(sms, settings)
        await asyncio.gather(
            remember_sent(settings, caller, "sms", sent),
            record_outgoing(settings, caller, sms.line, sent, sms.body, sms.media_urls, now))
        return await attempt.keep(created(FUNCTION, sent))
