"""call_events: Twilio tells the app how an incoming call went, and the caller waits on
what comes next (POST api/call_events?step=dialed|recorded|recording|transcribed).

Anonymous on purpose, like ``status_callback``: Twilio's request signature (and the
account it names) authenticates the request, and with it the owner's digest and time
that ``shared.incoming_calls`` put in the URL; with signature checks off it answers
only on a developer's machine. ``dialed``/``recorded`` answer TwiML;
``recording``/``transcribed`` keep a voicemail and its text (``shared.call_events``).
"""

from datetime import UTC, datetime

import azure.functions as func

from shared.call_events import admit_unsigned, carry_on, read_context, read_step, record_event
from shared.request_body import require_method
from shared.responses import acknowledged, answers_problems, twiml
from shared.settings import app_settings
from shared.webhook import read_webhook

FUNCTION = "call_events"


@answers_problems(FUNCTION)
async def main(req: func.HttpRequest) -> func.HttpResponse:
    require_method(req, ("POST",))
    settings = app_settings()
    admit_unsigned(req.url, settings)
    params = read_webhook(req, settings)
    step = read_step(req.params)
    context = read_context(step, req.params, params)  # the app's URL and Twilio's, signed
    if step in ("dialed", "recorded"):
        answer = await carry_on(settings, step, context, params, req.url)
        return twiml(FUNCTION, answer.document, sid=params.get("CallSid"),
                     outcome=answer.outcome)
    sid, outcome = await record_event(settings, step, context, params, datetime.now(UTC))
    return acknowledged(FUNCTION, sid, outcome)
