"""call_events: Twilio tells the app how an incoming call went, and the caller waits on
what comes next (POST api/call_events?step=dialed|recorded|recording|transcribed).

Anonymous on purpose, like ``status_callback``: Twilio's request signature (and the
account it names) authenticates the request, and with it the owner, caller and time
that ``shared.incoming_calls`` put in the URL. ``dialed``/``recorded`` answer TwiML;
``recording``/``transcribed`` keep a voicemail and its text (``shared.incoming_calls``).
"""

from datetime import UTC, datetime

import azure.functions as func

from shared.incoming_calls import carry_on, read_context, read_step, record_event
from shared.request_body import require_method
from shared.responses import acknowledged, answers_problems, twiml
from shared.settings import app_settings
from shared.webhook import read_webhook

FUNCTION = "call_events"


@answers_problems(FUNCTION)
async def main(req: func.HttpRequest) -> func.HttpResponse:
    require_method(req, ("POST",))
    settings = app_settings()
    params = read_webhook(req, settings)
    step, context = read_step(req.params), read_context(req.params)  # the app's, signed
    if step in ("dialed", "recorded"):
        answer = await carry_on(settings, step, context, params, req.url)
        return twiml(FUNCTION, answer.document, sid=params.get("CallSid"),
                     outcome=answer.outcome)
    sid, outcome = await record_event(settings, step, context, params, datetime.now(UTC))
    return acknowledged(FUNCTION, sid, outcome)
