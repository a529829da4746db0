"""send_sms: a mobile app sends an SMS (or MMS) through Twilio."""

from datetime import UTC, datetime

import azure.functions as func

from shared.conversations import record_outgoing
from shared.deliveries import note_sent, status_callback_url
from shared.idempotency import first_attempt, idempotency_key
from shared.identity import read_caller
from shared.limits import admit, caller_scope
from shared.messages import read_sms, send_message
from shared.opt_outs import learning_opt_outs, refuse_opted_out
from shared.request_body import read_payload, require_method
from shared.responses import answers_problems, created
from shared.settings import app_settings
from shared.started import started

FUNCTION = "send_sms"


@answers_problems(FUNCTION)
async def main(req: func.HttpRequest) -> func.HttpResponse:
    require_method(req, ("POST",))
    settings = app_settings()
    now = datetime.now(UTC)
    caller = read_caller(req, settings)
    key = idempotency_key(req)
    payload = read_payload(req)
    sms = read_sms(payload, settings, status_callback_url(req.url, settings, caller.owner))
    opted_out = started(refuse_opted_out(settings, sms.line, sms.to))  # beside the key's
    try:
        async with first_attempt(settings, caller, key, FUNCTION, payload) as attempt:
            await opted_out
            await admit(settings, "sms", caller_scope(req, caller), sms.to)
            noted = started(note_sent(settings, caller.owner, sms.line, sms.to, now))
            try:
                async with learning_opt_outs(settings, sms.line, sms.to, now):
                    sent = await send_message(sms, settings)  # while the sender is noted
            finally:
                await noted  # never raises
            await record_outgoing(settings, caller, sms.line, sent, sms.body, sms.media_urls,
                                  now)  # one transaction; never raises
            return await attempt.keep(created(FUNCTION, sent))
    finally:
        opted_out.cancel()
