"""twiml: Twilio fetches what to do with a call, or tells the app an SMS arrived.

Anonymous on purpose, since Twilio cannot send a function key: Twilio's
request signature is what authenticates the request. One URL for the
number's voice and messaging webhooks: an incoming SMS is stored in its
conversation (``shared.incoming_sms``) before it is answered; an incoming call
is routed to the app user it belongs to, or to voicemail (``shared.incoming_calls``).
A call the app placed (``make_call``) hears the message its URL carries. Imports
neither ``twilio.rest`` nor the store until an SMS or incoming call needs it: a
call's TwiML is fetched while the caller waits, so its cold start stays short.
"""

from datetime import UTC, datetime

import azure.functions as func

from shared.request_body import require_method
from shared.responses import answers_problems, twiml
from shared.settings import app_settings
from shared.twiml import is_incoming_call, is_incoming_sms, reply_document, voice_document
from shared.webhook import read_webhook

FUNCTION = "twiml"


@answers_problems(FUNCTION)
async def main(req: func.HttpRequest) -> func.HttpResponse:
    require_method(req, ("GET", "POST"))
    settings = app_settings()
    params = read_webhook(req, settings)
    if is_incoming_sms(params):
        from shared.incoming_sms import auto_reply, read_incoming, receive  # the store: see above

        incoming = read_incoming(params, datetime.now(UTC))
        outcome = await receive(settings, incoming)
        document = reply_document(auto_reply(settings, incoming))
        return twiml(FUNCTION, document, sid=incoming.message.sid, outcome=outcome)
    if is_incoming_call(params):
        from shared.incoming_calls import answer  # one store read: the caller waits

        routed = await answer(settings, params["From"], params["To"], req.url, datetime.now(UTC))
        return twiml(FUNCTION, routed.document, sid=params.get("CallSid"), outcome=routed.outcome)
    return twiml(FUNCTION, voice_document(req.params))
